# mintgate build. `make` builds ./mintgate; `make run` and `make test` are the two
# commands from the README. Everything comes from Debian packages (see `deps`).

CC       ?= cc
PREFIX   ?= /usr/local
LUADIR   ?= $(PREFIX)/share/lua/5.1
OPT      ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# CI builds treat warnings as errors (CI=true is set there).
ifneq ($(CI),)
WARN     += -Werror
endif
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -pthread \
            $(shell pkg-config --cflags luajit 2>/dev/null) -DMG_LUADIR='"$(LUADIR)"'
LDLIBS   += -lev $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1) \
            -lmemcached -lhashkit -lresolv -lm -lpthread

SRCS     := $(filter-out core/main.c,$(wildcard core/*.c))
HDRS     := $(wildcard core/*.h)
OBJS     := $(SRCS:core/%.c=build/%.o)
TESTS    := $(patsubst core/test/%.c,build/%,$(wildcard core/test/test_*.c))
ASAN_OBJS := $(SRCS:core/%.c=build/asan/%.o)
ASAN_TESTS := $(TESTS:build/%=build/asan/%)
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DMG_SANITIZE
TSAN_OBJS := $(SRCS:core/%.c=build/tsan/%.o)
TSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer -DMG_SANITIZE

# Debian packages the build, the suite and `make run` need.
DEB_PKGS := gcc make pkg-config clang-format cppcheck lua-check libev-dev libluajit-5.1-dev luajit libmemcached-dev \
            libmemcached-tools memcached lua-busted lua-socket nutcracker netcat-openbsd \
            luarocks python3 prometheus gdb \
            ruby ruby-dalli php-cli php-memcached python3-pylibmc

.DEFAULT_GOAL := all
-include $(wildcard build/*.d build/asan/*.d build/tsan/*.d)
include bench/Makefile.inc
DEB_PKGS += $(BENCH_DEB_PKGS)

.PHONY: all deps run test ctest spec capable asan asan-test valgrind bench bench-quick bench-herd lint clean install \
        fuzz fuzz-merge fuzz-wire fuzz-wire-smoke tsan tsan-test reference rock-test layers

all: mintgate build/tools.ok

# The Lua tools (./mintgate-lab, ./mintgate-top) and their modules: compiled by LuaJIT
# (a syntax error stops the build) and the launchers made executable.
TOOL_LUA := tools/mintgate-lab.lua tools/mintgate-top.lua lua/mintgate/lab.lua \
            lua/mintgate/lab_workload.lua lua/mintgate/top.lua
build/tools.ok: mintgate-lab mintgate-top $(TOOL_LUA) | build
	@for f in $(TOOL_LUA) mintgate-lab mintgate-top; do luajit -bl "$$f" >/dev/null || exit 1; done
	@chmod +x mintgate-lab mintgate-top
	@touch $@

# -MMD: each object's header dependencies, read back below.
build/%.o: core/%.c | build
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

build/asan/%.o: core/%.c | build
	@mkdir -p build/asan
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -MMD -MP -c -o $@ $<

build/tsan/%.o: core/%.c | build
	@mkdir -p build/tsan
	$(CC) $(CFLAGS) $(TSAN_FLAGS) -MMD -MP -c -o $@ $<

build:
	@mkdir -p build

# -rdynamic: the Lua side calls a few hot functions (mg_switch_on) through LuaJIT's FFI
mintgate: build/main.o $(OBJS)
	$(CC) $(CFLAGS) -rdynamic -o $@ $^ $(LDLIBS)

mintgate-asan: build/asan/main.o $(ASAN_OBJS)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -rdynamic -o $@ $^ $(LDLIBS)

# ThreadSanitizer build: the threaded, reload and switch specs run against it (make tsan-test).
mintgate-tsan: build/tsan/main.o $(TSAN_OBJS)
	$(CC) $(CFLAGS) $(TSAN_FLAGS) -rdynamic -o $@ $^ $(LDLIBS)

build/test_%: core/test/test_%.c $(OBJS) core/test/ctest.h
	$(CC) $(CFLAGS) -Icore -o $@ $< $(OBJS) $(LDLIBS) -lmemcachedutil

# The same C unit tests against the ASan+UBSan objects (LeakSanitizer on: run_ctests.sh
# fails a binary that reports a leak even after printing its own "N passed, 0 failed").
build/asan/test_%: core/test/test_%.c $(ASAN_OBJS) core/test/ctest.h
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -Icore -o $@ $< $(ASAN_OBJS) $(LDLIBS) -lmemcachedutil

# The engine without Lua: proto, net and engine objects only, no LuaJIT on the link line
# (core/test/test_engine.c stands in for the few worker functions they call back).
ENGINE_OBJS := $(patsubst %,build/%.o,buf log auth proto_text proto_bin proto_meta near meta_render keys ketama config health slowlog hotkeys trace \
                switch conn backend request dispatch dispatch_near dispatch_explain route herd stats)
build/test_engine: core/test/test_engine.c $(ENGINE_OBJS) core/test/ctest.h
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -pthread -Icore -o $@ $< $(ENGINE_OBJS) \
	  -lev -lmemcached -lhashkit -lresolv -lm -lpthread
ASAN_ENGINE_OBJS := $(ENGINE_OBJS:build/%=build/asan/%)
build/asan/test_engine: core/test/test_engine.c $(ASAN_ENGINE_OBJS) core/test/ctest.h
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(ASAN_FLAGS) -pthread -Icore -o $@ $< \
	  $(ASAN_ENGINE_OBJS) -lev -lmemcached -lhashkit -lresolv -lm -lpthread

# The parser fuzz targets (core/test/fuzz_*.c) without libFuzzer, under ASan+UBSan:
# fuzz_smoke drives them with a bounded deterministic mutator, fuzz_replay runs the
# committed corpus through them.
FUZZ_SRCS := core/test/fuzz_text.c core/test/fuzz_meta.c core/test/fuzz_bin.c
FUZZ_ASAN_OBJS := build/asan/proto_text.o build/asan/proto_meta.o build/asan/proto_bin.o build/asan/buf.o
build/fuzz_smoke build/fuzz_replay: build/fuzz_%: core/test/fuzz_%.c $(FUZZ_SRCS) core/test/fuzz.h \
                                    $(FUZZ_ASAN_OBJS)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -DFUZZ_NO_ENTRY -DFUZZ_CORPUS_DIR='"$(CURDIR)/core/test/corpus"' \
	  -Icore -o $@ $< $(FUZZ_SRCS) $(FUZZ_ASAN_OBJS)

# Coverage-guided fuzzing with clang's libFuzzer, one target per parser, linked with the
# parsers alone (and coverage-guided by them alone: core/test/fuzz.cov). New inputs go
# to build/fuzz/corpus/<target>, never to the committed core/test/corpus/<target>. A
# crash stops make with the input in build/fuzz/<target>-crash-*.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_text fuzz_meta fuzz_bin
FUZZ_MAX_LEN ?= 8192
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fsanitize-coverage-allowlist=core/test/fuzz.cov -Icore

FUZZ_PARSERS := core/proto_text.c core/proto_meta.c core/proto_bin.c core/buf.c
build/fuzz/%: core/test/%.c core/test/fuzz.h core/test/fuzz.cov $(FUZZ_PARSERS) $(HDRS)
	@command -v $(FUZZ_CC) >/dev/null || $(MAKE) --no-print-directory deps DEB_PKGS=clang
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_PARSERS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "== $$t: $(FUZZ_SECONDS) s"; \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -timeout=10 \
	    -dict=core/test/$$t.dict -artifact_prefix=build/fuzz/$$t- -print_final_stats=1 \
	    build/fuzz/corpus/$$t core/test/corpus/$$t || { echo "$$t: failed, see above"; exit 1; }; \
	done

# Rebuilds each committed corpus as the hand-written seeds (seed-*) plus the fewest
# inputs, from it and the scratch corpus, that reach every parser edge reached (edges
# only, -use_counters=0: hit counts would keep hundreds of near-duplicates).
fuzz-merge: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  c=core/test/corpus/$$t; m=build/fuzz/merge/$$t; \
	  rm -rf $$m && mkdir -p $$m build/fuzz/corpus/$$t && cp $$c/seed-* $$m/ && \
	  build/fuzz/$$t -merge=1 -use_counters=0 -timeout=10 $$m $$c build/fuzz/corpus/$$t && \
	  rm -rf $$c && mv $$m $$c || exit 1; \
	  echo "$$t: $$(ls $$c | wc -l) files in $$c"; \
	done

build/lmc_fill: core/test/lmc_fill.c | build
	$(CC) $(CFLAGS) -o $@ $< -lmemcached

# Install whatever Debian packages are missing (needs root; a no-op when all are there).
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: deps mintgate
	@sh examples/run.sh

CTESTS := $(TESTS) $(ASAN_TESTS) build/fuzz_smoke build/fuzz_replay
ctest: $(CTESTS) build/lmc_fill
	@sh spec/run_ctests.sh $(CTESTS)

# memjs, the binary-only Node client spec/e2e/binary_spec.lua runs (skipped without npm).
MEMJS := build/node/node_modules/memjs/package.json
$(MEMJS):
	@if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix build/node memjs@1.3.2; \
	else echo "npm not found: binary_spec skips memjs"; fi

spec: mintgate build/lmc_fill bench/mgload $(MEMJS)
	@sh spec/run_busted.sh

capable: mintgate
	@sh spec/run_capable.sh ./mintgate

asan: mintgate-asan

# The command, meta and bad-input tables against plain memcached: their expected answers
# are memcached's own (rows where the gateway deliberately differs say so).
reference:
	@sh spec/run_reference.sh

# The threaded, reload and switch specs against the ThreadSanitizer build.
TSAN_SPECS := spec/e2e/threads_spec.lua spec/e2e/lua_reload_spec.lua spec/e2e/lua_ab_switch_spec.lua \
              spec/e2e/reload_race_spec.lua spec/e2e/admin_strict_spec.lua \
              spec/e2e/eject_remap_spec.lua spec/e2e/replicate_spec.lua spec/e2e/metrics_spec.lua \
              spec/e2e/compose_spec.lua spec/e2e/trace_spec.lua spec/e2e/startup_signal_spec.lua
tsan: mintgate-tsan

tsan-test: mintgate-tsan bench/mgload
	@MINTGATE_BIN=./mintgate-tsan sh spec/run_busted.sh tsan $(TSAN_SPECS)

# The README's luarocks command into a temporary tree; the rock must load and run.
rock-test: mintgate
	@sh spec/run_rock.sh

asan-test: mintgate-asan build/lmc_fill
	@MINTGATE_BIN=./mintgate-asan sh spec/run_busted.sh asan

# The gateway under valgrind's memcheck: load, reload, bad input, shutdown; no leak.
valgrind: mintgate bench/mgload
	@sh spec/run_valgrind.sh ./mintgate

# The wire fuzzer (spec/fuzz_wire.py) against the ASan gateway. Knobs: SECONDS (600),
# SEED (random; printed), BIN (./mintgate-asan), CONNS (hostile connections, 16), FUZZ_ARGS
# (e.g. --safe). fuzz-wire-smoke is the short fixed-seed run of `make test`.
SECONDS ?= 600
BIN     ?= ./mintgate-asan
CONNS   ?= 16
fuzz-wire: mintgate-asan
	@python3 spec/fuzz_wire.py --seconds $(SECONDS) $(if $(SEED),--seed $(SEED)) --bin $(BIN) \
	  --conns $(CONNS) $(FUZZ_ARGS)

fuzz-wire-smoke: mintgate-asan
	@sh spec/run_fuzz_wire.sh ./mintgate-asan

# Every runner writes build/results/<name>.txt; summary.sh adds them up (and fails on a
# missing or malformed one). make test fails when a runner failed even if the sum says
# otherwise, and when summary.sh does.
test: deps
	@rm -rf build/results && mkdir -p build/results
	@$(MAKE) --no-print-directory all mintgate-asan mintgate-tsan $(CTESTS) build/lmc_fill bench/mgload
	@$(MAKE) --no-print-directory -k lint ctest spec reference capable asan-test tsan-test valgrind \
	  fuzz-wire-smoke rock-test; st=$$?; \
	sh spec/summary.sh build/results || exit 1; \
	[ $$st = 0 ] || { echo "make test: a runner failed (sub-make exit $$st)"; exit 1; }

bench-quick: deps mintgate
	@sh bench/quick.sh

bench-herd: deps mintgate
	@sh bench/herd.sh

bench: bench-run

# The core's layering (proto -> net -> engine -> Lua plug-in -> server; DESIGN.md section 11):
# no engine file includes a Lua header, no lower layer a server-level one.
layers:
	@sh spec/check_layers.sh

lint: layers
	@sh spec/run_lint.sh

install: mintgate
	install -D -m 755 mintgate $(DESTDIR)$(PREFIX)/bin/mintgate
	for f in lua/mintgate/*.lua; do install -D -m 644 $$f $(DESTDIR)$(LUADIR)/mintgate/$$(basename $$f); done

clean:
	rm -rf build mintgate mintgate-asan mintgate-tsan
