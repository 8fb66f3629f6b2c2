#!/usr/bin/env python3
"""spec/fuzz_wire.py: a seeded wire fuzzer for the gateway, in front of two real memcached.

Four rounds, each with its own memcached servers and gateway: "plain" (-s, no script),
"lua" (a config script with a prefix key transform and a staleness policy), "binary"
(-s, half the checkers and hostile connections speaking memcached's binary protocol:
BinChecker, BinHostileGen) and "near" (the lua round's script with the near cache on for
every key, its express lane included). In each round:

- checker connections each own a key namespace (chk<id>:<n>), run set/add/replace/
  append/prepend/cas/get/gets/gat/touch/delete/incr/decr/mg/ms/md/ma/mn with random
  values (binary bytes, 0 B .. 100 KB), sometimes pipelined and split across writes,
  keep a model of every key and verify every reply exactly, in order;
- hostile connections send mutated text and meta commands (bit flips, control bytes,
  huge and negative numbers, long and base64 keys, junk meta flags, short and long data
  blocks, random splits with small sleeps, long pipelines and multi-gets, abrupt closes,
  not reading for a while) on keys of their own (hos*); their replies are discarded.
  Nothing they send can name a checker key or flush, switch or reload.

A wrong or missing reply (5 s), an error for a well-formed command, the gateway dying,
a sanitizer report in its log or a bad exit on SIGTERM fails the run (exit 1). The same
--seed gives the same traffic on every connection (timing aside). Standard library only.
On a checker's failure, <log dir>/checker-<round>-<id>.log holds, for each key of the
failing command, the last HISTORY commands sent and replies received on it (with times
since the round began), and hostile-<round>.log the hostile traffic just before.

  python3 spec/fuzz_wire.py --seconds 60 --seed 7 --bin ./mintgate-asan
  python3 spec/fuzz_wire.py --safe      # without the mutation families known to desync
"""

import argparse
import base64
import collections
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPLY_TIMEOUT = 5.0
HISTORY = 200  # commands and replies kept per checker key, written out on failure
SANITIZER_RE = re.compile(rb"ERROR: AddressSanitizer|runtime error:|LeakSanitizer")
# A backend reply the gateway could not parse: a client's bytes broke a shared connection.
DESYNC_RE = re.compile(rb"unparsable reply")
# Hostile bytes never contain these (lower-cased): checker keys (also base64 of "chk"),
# and commands that would change what checkers see.
FORBIDDEN = (b"chk", b"y2hr", b"flush", b"switch", b"reload")

LUA_CONFIG = """-- written by spec/fuzz_wire.py: a prefix key transform and a staleness policy
local mg = require "mintgate"
mg.listen { os.getenv("MINTGATE_LISTEN") }
local main = mg.pool { name = "main",
  servers = { os.getenv("MEMCACHED_1"), os.getenv("MEMCACHED_2") } }
mg.keys { style = "prefix", prefix = "app:" }
mg.stale { grace = 30, lock = 2, wait = 50 }
mg.route { default = main }
"""

# the near round: every checker and hostile key near (a write through the gateway must drop it at once, so the
# checkers' models hold; another gateway's writes do not exist here)
NEAR_CONFIG = LUA_CONFIG.replace(
    'servers = { os.getenv("MEMCACHED_1"), os.getenv("MEMCACHED_2") } }',
    'servers = { os.getenv("MEMCACHED_1"), os.getenv("MEMCACHED_2") },\n'
    '  near = { ttl = 5, prefixes = { "chk", "hos" } } }\n'
    'mg.near { size = "16m", ttl = 5, hot = true }')


class Failure(Exception):
    """A verdict: the run fails with this message."""


def log(msg):
    sys.stdout.write("fuzz-wire: %s\n" % msg)
    sys.stdout.flush()


def short(b, n=160):
    """repr of bytes, cut to about n characters."""
    r = repr(bytes(b))
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


# ---------------------------------------------------------------------------------------
# processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Procs:
    """Every process a round started; stop_all() ends them (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, logpath, env=None):
        f = open(logpath, "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=env)
        f.close()
        self.procs.append(p)
        return p

    def wait_port(self, p, port, bound=10.0):
        deadline = time.time() + bound
        while time.time() < deadline:
            if p.poll() is not None:
                return False
            if port_open(port):
                return True
            time.sleep(0.05)
        return False

    def stop(self, p, bound=10.0):
        """SIGTERM p and wait; SIGKILL after bound s. Returns (exit status, killed)."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(bound), False
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(), True

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            self.stop(p, 5.0)
        self.procs = []


def start_memcached(procs, logdir, n):
    """A memcached on a free port; retried on another port if the first got taken."""
    user = ["-u", "root"] if os.geteuid() == 0 else []
    for _ in range(3):
        port = free_port()
        p = procs.start(["memcached"] + user + ["-p", str(port), "-l", "127.0.0.1", "-U", "0",
                                                "-m", "64"],
                        os.path.join(logdir, "memcached%d.log" % n))
        if procs.wait_port(p, port):
            return port
        procs.stop(p, 2.0)
    raise Failure("memcached did not start (see %s)" % logdir)


def sanitizer_env():
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "detect_leaks=1:abort_on_error=0"
    ubsan = env.get("UBSAN_OPTIONS", "")
    env["UBSAN_OPTIONS"] = (ubsan + ":" if ubsan else "") + "print_stacktrace=1"
    return env


def start_gateway(procs, args, logdir, rnd, ports, threads=2):
    """The gateway for round rnd ("plain", "lua", "near"); returns (Popen, port, log path)."""
    logpath = os.path.join(logdir, "gateway-%s.log" % rnd)
    env = sanitizer_env()
    env["MEMCACHED_1"] = "127.0.0.1:%d" % ports[0]
    env["MEMCACHED_2"] = "127.0.0.1:%d" % ports[1]
    for _ in range(3):
        pg = free_port()
        env["MINTGATE_LISTEN"] = "127.0.0.1:%d" % pg
        argv = [args.bin, "-t", str(threads), "-l", "127.0.0.1:%d" % pg] + args.gw_arg
        if rnd in ("lua", "near"):
            cfg = os.path.join(logdir, "fuzz-wire-config-%s.lua" % rnd)
            with open(cfg, "w") as f:
                f.write(LUA_CONFIG if rnd == "lua" else NEAR_CONFIG)
            argv.append(cfg)
        else:
            argv += ["-s", "127.0.0.1:%d,127.0.0.1:%d" % ports]
        p = procs.start(argv, logpath, env)
        if procs.wait_port(p, pg):
            return p, pg, logpath
        procs.stop(p, 5.0)
    raise Failure("the gateway did not start: %s" % " ".join(argv))


# ---------------------------------------------------------------------------------------
# connections

class Conn:
    """A non-blocking client socket with a queue of timed chunks to send."""

    def __init__(self, loop, port):
        self.loop = loop
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.out = bytearray()
        self.timed = collections.deque()  # (not before, bytes)
        self.closed = False
        self.reading = True
        loop.sel.register(self.sock, selectors.EVENT_READ, self)

    def send_later(self, data, at):
        self.timed.append((at, data))

    def pending(self):
        return len(self.out) + sum(len(d) for _, d in self.timed)

    def flush(self, now):
        while self.timed and self.timed[0][0] <= now:
            self.out += self.timed.popleft()[1]
        if not self.out or self.closed:
            return
        try:
            n = self.sock.send(self.out)
            del self.out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            self.on_error("send: %s" % e)

    def pause_reading(self, on):
        if self.closed or on == (not self.reading):
            return
        self.reading = not on
        if on:
            self.loop.sel.unregister(self.sock)
        else:
            self.loop.sel.register(self.sock, selectors.EVENT_READ, self)

    def readable(self):
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.on_error("recv: %s" % e)
            return
        if not data:
            self.on_error("closed by the gateway")
            return
        self.on_data(data)

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        if self.reading:
            self.loop.sel.unregister(self.sock)
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self.sock.close()

    def on_data(self, data):
        raise NotImplementedError

    def on_error(self, what):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# the checker: a model of its own keys and exact verification of every reply

class Entry:
    """What a key holds: exact bytes, or a counter whose bytes memcached may pad with
    spaces (a decr/incr rewritten in place keeps the old length)."""

    __slots__ = ("value", "flags", "ttl", "num", "maxlen", "cas")

    def __init__(self, value, flags, ttl):
        self.value, self.flags, self.ttl = value, flags, ttl
        self.num = None
        self.maxlen = len(value)
        self.cas = None
        if value and len(value) <= 20 and value.isdigit() and int(value) < 1 << 63:
            self.num = int(value)

    def copy(self):
        """Every change makes a new Entry: replies already expected keep the old one."""
        e = Entry.__new__(Entry)
        for k in Entry.__slots__:
            setattr(e, k, getattr(self, k))
        return e

    def matches(self, data):
        if self.value is not None:
            return data == self.value
        return (len(data) <= self.maxlen or len(data) == len(str(self.num))) and \
            data.rstrip(b" ") == str(self.num).encode()

    def describe(self):
        if self.value is not None:
            return short(self.value)
        return "counter %d (padded to at most %d bytes)" % (self.num, self.maxlen)


class Expect:
    """One expected reply. kind: line (exact), retr (VALUE... END), meta (VA/EN/HD...)."""

    def __init__(self, cmd, kind, **kw):
        self.cmd = cmd
        self.kind = kind
        self.__dict__.update(kw)


def read_line(buf, pos):
    i = buf.find(b"\r\n", pos)
    if i < 0:
        return None, pos
    return bytes(buf[pos:i]), i + 2


def value_bytes(rng):
    r = rng.random()
    if r < 0.6:
        n = rng.randrange(0, 100)
    elif r < 0.85:
        n = rng.randrange(100, 4000)
    elif r < 0.95:
        n = rng.randrange(4000, 32000)
    else:
        n = rng.randrange(32000, 100000)
    style = rng.random()
    if style < 0.4:
        return rng.randbytes(n)
    if style < 0.7:
        return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(min(n, 200)))
    # protocol look-alikes inside values
    parts = [b"END\r\n", b"VALUE chk0:1 0 1\r\n", b"\r\n", b"STORED\r\n", b"\0", b"EN\r\n",
             b"VA 2 f0\r\n", b"SERVER_ERROR x\r\n"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(parts)
    return bytes(out[:n])


class Checker(Conn):
    def __init__(self, fz, ident):
        super().__init__(fz.loop, fz.port)
        self.fz = fz
        self.ident = ident
        self.rng = random.Random("%s:%s:checker:%d" % (fz.seed, fz.round, ident))
        self.nkeys = 40
        self.model = {}
        self.expect = collections.deque()
        self.inbuf = bytearray()
        self.last_progress = time.time()
        self.batch = []
        self.ops = 0
        self.sent = 0
        self.gen_keys = []  # the keys of the command being generated
        self.hist = collections.defaultdict(lambda: collections.deque(maxlen=HISTORY))

    def key(self, n):
        return "chk%d:%d" % (self.ident, n)

    def note(self, keys, what):
        """A line of the per-key history (dumped on failure: dump_history)."""
        t = time.time() - self.fz.start
        for k in dict.fromkeys(keys):
            self.hist[k].append("+%.3fs %s" % (t, what))

    def dump_history(self, exp):
        """Write every command sent and reply received for the keys of exp's command (the
        last HISTORY of each) to <log dir>/checker-<round>-<id>.log; returns its path."""
        path = os.path.join(self.fz.args.log_dir, "checker-%s-%d.log" % (self.fz.round, self.ident))
        with open(path, "w") as f:
            for k in getattr(exp, "keys", None) or sorted(self.hist):
                f.write("== %s (model: %s)\n" % (k, self.model[k].describe() if k in self.model
                                                   else "missing"))
                for line in self.hist.get(k, ()):
                    f.write(line + "\n")
        return path

    def fail(self, exp, got):
        self.note(getattr(exp, "keys", ()), "FAILED: want %s, got %s" % (exp.want, short(got, 200)))
        log("checker %d: history of its keys: %s" % (self.ident, self.dump_history(exp)))
        raise Failure("round %s, checker %d: command %s (in a batch of %s)\n  expected: %s\n"
                      "  got:      %s" % (self.fz.round, self.ident, short(exp.cmd, 200),
                                          " | ".join(short(c, 60) for c in self.batch),
                                          exp.want, short(got, 300)))

    def on_error(self, what):
        if self.fz.stopping:
            return
        raise Failure("round %s, checker %d: connection %s with %d replies outstanding "
                      "(next: %s)" % (self.fz.round, self.ident, what, len(self.expect),
                                      short(self.expect[0].cmd) if self.expect else "-"))

    # -- generation: each returns (bytes, [Expect]) and updates the model in order --------

    def rand_key(self):
        k = self.key(self.rng.randrange(self.nkeys))
        self.gen_keys.append(k)
        return k

    def gen(self):
        rng = self.rng
        ops = [(self.op_set, 20), (self.op_get, 18), (self.op_delete, 6), (self.op_arith, 7),
               (self.op_concat, 5), (self.op_cas, 5), (self.op_touch, 4), (self.op_mg, 14),
               (self.op_ms, 10), (self.op_md, 3), (self.op_ma, 4), (self.op_mg_quiet, 4)]
        total = sum(w for _, w in ops)
        r = rng.randrange(total)
        for fn, w in ops:
            if r < w:
                res = fn()
                if res:
                    return res
                self.gen_keys = []
                return self.op_set()
            r -= w
        return self.op_set()

    def line(self, cmd, want):
        return Expect(cmd, "line", want=want)

    def op_set(self):
        rng = self.rng
        k = self.rand_key()
        verb = rng.choice(["set", "set", "set", "add", "replace"])
        if rng.random() < 0.2:
            v = str(rng.choice([0, 1, 9, 99, 12345, (1 << 62) - 2, rng.randrange(1 << 62)])).encode()
        else:
            v = value_bytes(rng)
        flags = rng.choice([0, 0, 1, 65535, rng.randrange(1 << 32)])
        ttl = rng.choice([0, 0, 0, 3600, 86400, 2592000 - 10])
        noreply = rng.random() < 0.1
        cmd = ("%s %s %d %d %d%s\r\n" % (verb, k, flags, ttl, len(v),
                                         " noreply" if noreply else "")).encode() + v + b"\r\n"
        cur = self.model.get(k)
        ok = verb == "set" or (verb == "add") == (cur is None)
        if ok:
            self.model[k] = Entry(v, flags, ttl)
        ex = [] if noreply else [self.line(cmd, b"STORED" if ok else b"NOT_STORED")]
        return cmd, ex

    def op_get(self):
        rng = self.rng
        n = 1 if rng.random() < 0.6 else rng.randrange(2, 12)
        keys = [self.rand_key() for _ in range(n)]
        if "samekey" in self.fz.skip:
            keys = list(dict.fromkeys(keys))
        verb = rng.choice(["get", "get", "gets", "gat", "gats"])
        ttl = None
        if verb.startswith("gat"):
            ttl = rng.choice([0, 3600, 86400])
            cmd = ("%s %d %s\r\n" % (verb, ttl, " ".join(keys))).encode()
        else:
            cmd = ("%s %s\r\n" % (verb, " ".join(keys))).encode()
        hits = []
        for k in keys:
            e = self.model.get(k)
            if e is not None:
                if ttl is not None:
                    e = self.model[k] = e.copy()
                    e.ttl = ttl
                hits.append((k, e))
        return cmd, [Expect(cmd, "retr", hits=hits, cas=verb in ("gets", "gats"),
                            want="%d hits then END: %s" % (len(hits), ", ".join(
                                "%s=%s" % (k, e.describe()) for k, e in hits)[:400]))]

    def op_delete(self):
        k = self.rand_key()
        cur = self.model.pop(k, None)
        cmd = ("delete %s\r\n" % k).encode()
        return cmd, [self.line(cmd, b"DELETED" if cur else b"NOT_FOUND")]

    def op_arith(self):
        rng = self.rng
        k = self.rand_key()
        cur = self.model.get(k)
        if cur is not None and cur.num is None:
            return None
        delta = rng.choice([0, 1, 7, 1000, 1 << 40, rng.randrange(1 << 62)])
        incr = self.incr_ok(cur, delta)
        cmd = ("%s %s %d\r\n" % ("incr" if incr else "decr", k, delta)).encode()
        if cur is None:
            return cmd, [self.line(cmd, b"NOT_FOUND")]
        new = cur.num + delta if incr else max(0, cur.num - delta)
        self.set_counter(k, cur, new)
        return cmd, [self.line(cmd, str(new).encode())]

    def incr_ok(self, cur, delta):
        """Incr (else decr), keeping counters below 2^63: for bigger numbers memcached
        looks for a '-' with strchr() past the end of the value, so incr can randomly
        answer "non-numeric" (memcached's own bug, not the gateway's)."""
        return self.rng.random() < 0.6 and (cur is None or cur.num + delta < 1 << 63)

    def set_counter(self, k, cur, new):
        e = self.model[k] = cur.copy()
        e.maxlen = max(cur.maxlen if cur.value is None else len(cur.value), len(str(new)))
        e.num, e.value, e.cas = new, None, None

    def op_concat(self):
        rng = self.rng
        k = self.rand_key()
        cur = self.model.get(k)
        if cur is not None and cur.value is None:
            return None
        verb = rng.choice(["append", "prepend"])
        v = value_bytes(rng)[:rng.choice([5, 100, 5000])]
        cmd = ("%s %s 0 0 %d\r\n" % (verb, k, len(v))).encode() + v + b"\r\n"
        if cur is None:
            return cmd, [self.line(cmd, b"NOT_STORED")]
        newv = cur.value + v if verb == "append" else v + cur.value
        e = Entry(newv, cur.flags, cur.ttl)
        self.model[k] = e
        return cmd, [self.line(cmd, b"STORED")]

    def op_cas(self):
        rng = self.rng
        cands = [k for k, e in self.model.items() if e.cas is not None]
        if not cands or rng.random() < 0.15:
            k = self.rand_key()
            cur = self.model.get(k)
            casv = rng.randrange(1 << 41, 1 << 42)  # never a real one
            good = False
        else:
            k = rng.choice(sorted(cands))
            self.gen_keys.append(k)
            cur = self.model[k]
            good = rng.random() < 0.75
            casv = cur.cas if good else cur.cas + rng.randrange(1, 1000)
        v = value_bytes(rng)
        flags = rng.randrange(1 << 16)
        cmd = ("cas %s %d 0 %d %d\r\n" % (k, flags, len(v), casv)).encode() + v + b"\r\n"
        if cur is None:
            want = b"NOT_FOUND"
        elif good:
            want = b"STORED"
            self.model[k] = Entry(v, flags, 0)
        else:
            want = b"EXISTS"
        return cmd, [self.line(cmd, want)]

    def op_touch(self):
        k = self.rand_key()
        ttl = self.rng.choice([0, 3600, 86400])
        cur = self.model.get(k)
        cmd = ("touch %s %d\r\n" % (k, ttl)).encode()
        if cur is not None:
            self.model[k] = cur.copy()
            self.model[k].ttl = ttl
        return cmd, [self.line(cmd, b"TOUCHED" if cur else b"NOT_FOUND")]

    def opaque(self):
        n = self.rng.choice([1, 2, 3, 7, 16, 30, 31])  # memcached: at most 31
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    def meta_key(self, k):
        """(key token, flags to add) — sometimes the key in base64 with the b flag."""
        if "b64" not in self.fz.skip and self.rng.random() < 0.15:
            return base64.b64encode(k.encode()).decode(), ["b"]
        return k, []

    def op_mg(self, quiet=False):
        rng = self.rng
        k = self.rand_key()
        tok, extra = self.meta_key(k)
        flags = [f for f in ["v", "k", "f", "s", "t", "c"] if rng.random() < 0.5]
        if rng.random() < 0.5:
            flags.append("O" + self.opaque())
        if quiet:
            flags.append("q")
        flags += extra
        rng.shuffle(flags)
        cmd = ("mg %s%s\r\n" % (tok, "".join(" " + f for f in flags))).encode()
        cur = self.model.get(k)
        if cur is None and quiet:
            return cmd, []
        return cmd, [Expect(cmd, "meta", key=k, tok=tok, b64=bool(extra), flags=flags,
                            entry=cur, want="VA/HD for %s" % cur.describe() if cur else "EN")]

    def op_mg_quiet(self):
        # several quiet gets then mn: only the hits, then MN
        out, ex = b"", []
        for _ in range(self.rng.randrange(1, 6)):
            c, e = self.op_mg(quiet=True)
            out += c
            ex += e
        out += b"mn\r\n"
        ex.append(self.line(b"mn\r\n", b"MN"))
        return out, ex

    def op_ms(self):
        rng = self.rng
        k = self.rand_key()
        tok, extra = self.meta_key(k)
        v = value_bytes(rng)
        fl = rng.choice([0, 3, rng.randrange(1 << 32)])
        ttl = rng.choice([0, 0, 3600])
        flags = ["F%d" % fl, "T%d" % ttl]
        if rng.random() < 0.4:
            flags.append("O" + self.opaque())
        if rng.random() < 0.3:
            flags.append("k")
        quiet = rng.random() < 0.2
        if quiet:
            flags.append("q")
        flags += extra
        rng.shuffle(flags)
        cmd = ("ms %s %d%s\r\n" % (tok, len(v), "".join(" " + f for f in flags))).encode() + \
            v + b"\r\n"
        self.model[k] = Entry(v, fl, ttl)
        if quiet:
            return cmd + b"mn\r\n", [self.line(b"mn\r\n", b"MN")]
        return cmd, [Expect(cmd, "meta", key=k, tok=tok, b64=bool(extra), flags=flags,
                            entry=None, status="HD", want="HD")]

    def op_md(self):
        k = self.rand_key()
        tok, extra = self.meta_key(k)
        flags = extra + (["O" + self.opaque()] if self.rng.random() < 0.5 else [])
        cmd = ("md %s%s\r\n" % (tok, "".join(" " + f for f in flags))).encode()
        cur = self.model.pop(k, None)
        st = "HD" if cur else "NF"
        return cmd, [Expect(cmd, "meta", key=k, tok=tok, b64=bool(extra), flags=flags,
                            entry=None, status=st, want=st)]

    def op_ma(self):
        rng = self.rng
        k = self.rand_key()
        cur = self.model.get(k)
        if cur is not None and cur.num is None:
            return None
        delta = rng.choice([1, 5, 1 << 40])
        incr = self.incr_ok(cur, delta)
        flags = ["v", "D%d" % delta] + ([] if incr else ["MD"])
        cmd = ("ma %s %s\r\n" % (k, " ".join(flags))).encode()
        if cur is None:
            return cmd, [self.line(cmd, b"NF")]
        new = cur.num + delta if incr else max(0, cur.num - delta)
        self.set_counter(k, cur, new)
        return cmd, [Expect(cmd, "ma", num=new, want="VA <n> then %d" % new)]

    # -- driving ----------------------------------------------------------------------------

    def tick(self, now):
        if self.closed:
            return
        if self.expect:
            if now - self.last_progress > REPLY_TIMEOUT:
                self.fail(self.expect[0], b"(no reply within %.0f s)" % REPLY_TIMEOUT)
            return
        if self.timed or self.out:
            return
        n = 1 if self.rng.random() < 0.6 else self.rng.randrange(2, 9)
        data = bytearray()
        self.batch = []
        for _ in range(n):
            self.gen_keys = []
            cmd, ex = self.gen()
            for e in ex:
                e.keys = self.gen_keys
            self.note(self.gen_keys, "sent %s" % short(cmd, 200))
            data += cmd
            self.batch.append(cmd)
            self.expect.extend(ex)
            self.sent += 1
            self.fz.cmds += 1
        if not self.expect:  # all noreply: end with something that answers
            end, ex = self.end_batch()
            self.expect.append(ex)
            data += end
        self.last_progress = now
        if self.rng.random() < 0.2:
            self.fz.split_send(self, bytes(data), self.rng, now)
        else:
            self.out += data

    def on_data(self, data):
        self.inbuf += data
        self.last_progress = time.time()
        pos = 0
        while self.expect:
            r = self.parse(self.expect[0], pos)
            if r is None:
                break
            self.note(getattr(self.expect[0], "keys", ()), "got  %s" % short(self.inbuf[pos:r], 200))
            pos = r
            self.expect.popleft()
            self.ops += 1
            self.fz.verified += 1
        del self.inbuf[:pos]
        if not self.expect and self.inbuf:
            self.fail(Expect(b"(none)", "line", want="nothing"), self.inbuf)

    def end_batch(self):
        return b"mn\r\n", self.line(b"mn\r\n", b"MN")

    def check_error(self, exp, line):
        if line.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")):
            self.fail(exp, line)

    def parse(self, exp, pos):
        """Verify exp against inbuf at pos: new pos, or None when more bytes are needed."""
        buf = self.inbuf
        line, p = read_line(buf, pos)
        if line is None:
            if len(buf) - pos > 4096 and exp.kind != "retr":
                self.fail(exp, buf[pos:pos + 300])
            return None
        self.check_error(exp, line)
        if exp.kind == "line":
            if line != exp.want:
                self.fail(exp, line)
            return p
        if exp.kind == "ma":
            m = re.fullmatch(rb"VA (\d+)", line)
            if not m:
                self.fail(exp, line)
            n = int(m.group(1))
            if len(buf) < p + n + 2:
                return None
            data = bytes(buf[p:p + n])
            if data != str(exp.num).encode() or buf[p + n:p + n + 2] != b"\r\n":
                self.fail(exp, line + b"\r\n" + data)
            return p + n + 2
        if exp.kind == "retr":
            return self.parse_retr(exp, pos)
        return self.parse_meta(exp, line, p)

    def parse_retr(self, exp, pos):
        buf = self.inbuf
        i = 0
        while True:
            line, p = read_line(buf, pos)
            if line is None:
                return None
            self.check_error(exp, line)
            if line == b"END":
                if i != len(exp.hits):
                    self.fail(exp, b"END after %d of %d hits" % (i, len(exp.hits)))
                return p
            if i >= len(exp.hits):
                self.fail(exp, line)
            k, e = exp.hits[i]
            parts = line.split(b" ")
            want_n = 5 if exp.cas else 4
            if len(parts) != want_n or parts[0] != b"VALUE" or parts[1] != k.encode() or \
                    parts[2] != str(e.flags).encode() or not parts[3].isdigit():
                self.fail(exp, b"hit #%d: " % i + line)
            n = int(parts[3])
            if len(buf) < p + n + 2:
                return None
            data = bytes(buf[p:p + n])
            if not e.matches(data) or buf[p + n:p + n + 2] != b"\r\n":
                self.fail(exp, b"hit #%d: " % i + line + b"\r\n" + short(data, 300).encode())
            if exp.cas:
                e.cas = int(parts[4])
            pos = p + n + 2
            i += 1

    def parse_meta(self, exp, line, p):
        toks = line.split(b" ")
        e = exp.entry
        status = toks[0].decode("latin-1")
        rest = [t.decode("latin-1") for t in toks[1:]]
        # an item stored with a base64 key comes back as base64 with b, whatever the request
        rest = [t for t in rest if t != "b"]
        want_status = getattr(exp, "status", None)
        if want_status is None:
            want_status = "EN" if e is None else ("VA" if "v" in exp.flags else "HD")
        if status != want_status:
            self.fail(exp, line)
        n = None
        if status == "VA":
            if not rest or not rest[0].isdigit():
                self.fail(exp, line)
            n = int(rest.pop(0))
        # the flags that come back, in request order
        wants = []
        for f in exp.flags:
            c = f[0]
            if c in "vqbFTI":
                continue
            if status in ("EN", "NF", "HD") and exp.kind == "meta" and c not in "kO" and e is None:
                continue
            wants.append(f)
        if len(rest) != len(wants):
            self.fail(exp, line)
        for f, got in zip(wants, rest):
            c = f[0]
            ok = True
            if c == "O":
                ok = got == f
            elif c == "k":
                ok = got in ("k" + exp.key, "k" + base64.b64encode(exp.key.encode()).decode())
            elif c == "f":
                ok = got == "f%d" % e.flags
            elif c == "s":
                ok = got == "s%d" % len(e.value) if e.value is not None else \
                    (got[:1] == "s" and got[1:].isdigit() and int(got[1:]) <= e.maxlen)
            elif c == "t":
                ok = got == "t-1" if e.ttl == 0 else (got[:1] == "t" and got[1:].isdigit())
            elif c == "c":
                ok = got[:1] == "c" and got[1:].isdigit()
                if ok:
                    e.cas = int(got[1:])
            if not ok:
                self.fail(exp, line)
        if n is None:
            return p
        buf = self.inbuf
        if len(buf) < p + n + 2:
            return None
        data = bytes(buf[p:p + n])
        if not e.matches(data) or buf[p + n:p + n + 2] != b"\r\n":
            self.fail(exp, line + b"\r\n" + short(data, 300).encode())
        return p + n + 2


# ---------------------------------------------------------------------------------------
# hostile connections

HUGE = ["9223372036854775807", "-1", "18446744073709551616", "18446744073709551615", "-0",
        "4294967296", "2147483648", "99999999999999999999999", "0x10", "1e3", "+5", "", "00"]
# What --safe leaves out: a meta line with a control byte before its line end (a junk
# flag like q\rjunk, an opaque token with a tab, `mg k O66e\x0c\n`, a \r\r\n line end). These desync a
# shared backend connection in the current gateway.
KNOWN_BAD = re.compile(rb"m[a-z][^\n]*?(?:[\x00-\x09\x0b\x0c\x0e-\x1f]|\r(?!\n))[^\n]*\n"
                       rb"|m[a-z][^\n]*\r\r\n")
JUNK_FLAGS = ["qx", "q1", "q\rjunk", "vv", "kk", "Ox", "q\0", "v\tq", "b\r"]
OK_FLAGS = ["v", "k", "f", "s", "t", "c", "h", "l", "q", "Oabc", "O", "O" + "z" * 40, "T-1",
            "T30", "N30", "R30", "E1", "I", "MA", "MP", "ME", "MS", "MR", "MI", "MD", "D5",
            "J13", "S3", "F7", "C1", "x", "u", "b"]
TEXT_VERBS = ["get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
              "delete", "incr", "decr", "touch", "version", "verbosity", "stats", "quit",
              "shutdown", "mn", "me", "mg", "ms", "md", "ma", "bogus", "GET", "", "gett"]


class HostileGen:
    """The bytes hostile connections send: commands on hos* keys, mutated; never anything
    that could name a checker key or flush, switch or reload (FORBIDDEN)."""

    def __init__(self, rng, safe):
        self.rng = rng
        self.safe = safe
        self.tail = b""
        self.rejected = 0

    def hkey(self):
        rng = self.rng
        r = rng.random()
        if r < 0.75:
            return "hos:%d" % rng.randrange(64)
        if r < 0.85:
            return "hos" + "L" * rng.randrange(237, 600)
        if r < 0.92:
            return "hos:" + "".join(rng.choice("abc\x01\x7f ") for _ in range(rng.randrange(1, 9)))
        return "hos%d" % rng.randrange(1000)

    def value(self, n):
        return self.rng.randbytes(n)

    def text_cmd(self):
        rng = self.rng
        verb = rng.choice(TEXT_VERBS)
        num = lambda: rng.choice(HUGE) if rng.random() < 0.2 else str(rng.choice([0, 1, 5, 30, 3600]))
        if verb in ("get", "gets", "GET"):
            keys = [self.hkey() for _ in range(rng.choice([1, 1, 3, 20, 100, 300]))]
            return ("%s %s\r\n" % (verb, " ".join(keys))).encode()
        if verb in ("gat", "gats"):
            keys = [self.hkey() for _ in range(rng.choice([1, 2, 30]))]
            return ("%s %s %s\r\n" % (verb, num(), " ".join(keys))).encode()
        if verb in ("set", "add", "replace", "append", "prepend", "cas"):
            n = rng.choice([0, 1, 10, 100, 2000]) if rng.random() < 0.95 else \
                rng.choice([200000, 1048576, 2000000])
            announced = str(n) if rng.random() < 0.85 else rng.choice(HUGE)
            real = n
            if rng.random() < 0.15:
                real = max(0, n + rng.choice([-5, -1, 1, 2, 100]))
            ttl = rng.choice(["0", "1", "5", "-1"]) if rng.random() < 0.9 else rng.choice(HUGE)
            extra = (" " + num()) if verb == "cas" else ""
            nr = " noreply" if rng.random() < 0.2 else ""
            head = "%s %s %s %s %s%s%s\r\n" % (verb, self.hkey(), num(), ttl, announced, extra, nr)
            return head.encode() + self.value(min(real, 3000000)) + b"\r\n"
        if verb == "delete":
            return ("delete %s%s\r\n" % (self.hkey(), rng.choice(["", " 0", " noreply", " 5"]))).encode()
        if verb in ("incr", "decr"):
            return ("%s %s %s%s\r\n" % (verb, self.hkey(), num(),
                                        rng.choice(["", " noreply"]))).encode()
        if verb == "touch":
            return ("touch %s %s\r\n" % (self.hkey(), num())).encode()
        if verb == "verbosity":
            return ("verbosity %s\r\n" % rng.choice(["0", "1", "", "x"])).encode()
        if verb == "stats":
            return ("stats%s\r\n" % rng.choice(["", " backends", " pools", " herd", " switches",
                                                " items", " slabs", " nonsense"])).encode()
        if verb in ("mg", "ms", "md", "ma", "me"):
            return self.meta_cmd(verb)
        return ("%s %s\r\n" % (verb, self.hkey())).encode() if verb else b"\r\n"

    def meta_cmd(self, verb=None):
        rng = self.rng
        verb = verb or rng.choice(["mg", "mg", "ms", "md", "ma", "mn", "me"])
        if verb == "mn":
            return b"mn\r\n"
        key = self.hkey()
        flags = [rng.choice(OK_FLAGS) for _ in range(rng.randrange(0, 7))]
        if rng.random() < 0.15:
            key = base64.b64encode(key.encode()).decode()
            flags.append("b")
        if rng.random() < 0.3:
            flags.append("O" + "".join(rng.choice("0123456789abcdef") for _ in
                                       range(rng.choice([1, 3, 31, 32, 33, 64]))))
        if not self.safe and rng.random() < 0.2:
            flags.append(rng.choice(JUNK_FLAGS))
        rng.shuffle(flags)
        if verb == "ms":
            n = rng.choice([0, 1, 10, 500, 5000])
            real = n if rng.random() < 0.85 else max(0, n + rng.choice([-3, 1, 10]))
            size = str(n) if rng.random() < 0.9 else rng.choice(HUGE)
            return ("ms %s %s%s\r\n" % (key, size, "".join(" " + f for f in flags))).encode() + \
                self.value(real) + b"\r\n"
        return ("%s %s%s\r\n" % (verb, key, "".join(" " + f for f in flags))).encode()

    def mutate(self, cmd):
        rng = self.rng
        b = bytearray(cmd)
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            if not b:
                break
            m = rng.randrange(10)
            i = rng.randrange(len(b))
            if m == 0:
                b[i] ^= 1 << rng.randrange(8)
            elif m == 1:
                # a lone \r inside a meta line is in the known-bad family (like q\rjunk)
                ctl = [b"\0", b"\t", b"\x7f", b"\n", b" ", b"\x80"] + ([] if self.safe else [b"\r"])
                b[i:i] = rng.choice(ctl)
            elif m == 2:  # duplicate or remove a space
                j = b.find(b" ", i)
                if j >= 0:
                    if rng.random() < 0.5:
                        b[j:j] = b" "
                    else:
                        del b[j]
            elif m == 3:  # replace a number
                mm = list(re.finditer(rb"\d+", bytes(b)))
                if mm:
                    x = rng.choice(mm)
                    b[x.start():x.end()] = rng.choice(HUGE).encode()
            elif m == 4:
                del b[i:]
            elif m == 5 and not self.safe:  # \r\r\n line ends
                b = bytearray(bytes(b).replace(b"\r\n", b"\r\r\n", rng.randrange(1, 3)))
            elif m == 6:
                b = bytearray(bytes(b).replace(b"\r\n", rng.choice([b"\n", b"\r", b""]), 1))
            elif m == 7:
                b[i:i] = b[i:i + rng.randrange(1, 20)]
            elif m == 8:
                del b[i:i + rng.randrange(1, 8)]
            else:
                b[i:i + 1] = bytes([rng.randrange(256)])
        return bytes(b)

    def unit(self):
        """The next bytes to send: one or many (mutated) commands."""
        rng = self.rng
        n = 1 if rng.random() < 0.7 else rng.choice([2, 5, 20, 100])
        out = bytearray()
        count = 0
        for _ in range(n):
            for _ in range(20):
                cmd = self.text_cmd() if rng.random() < 0.6 else self.meta_cmd()
                if rng.random() < 0.6:
                    cmd = self.mutate(cmd)
                if self.safe and KNOWN_BAD.match(cmd):
                    self.rejected += 1
                    continue
                window = (self.tail + bytes(out[-16:]) + cmd).lower()
                if not any(w in window for w in FORBIDDEN):
                    break
                self.rejected += 1
            else:
                continue
            out += cmd
            count += 1
        if out:
            self.tail = bytes(out[-16:])
        return bytes(out), count


class Hostile(Conn):
    def __init__(self, fz, ident, gen):
        super().__init__(fz.loop, fz.port)
        self.fz = fz
        self.ident = ident
        self.rng = random.Random("%s:%s:hostile:%d:%d" % (fz.seed, fz.round, ident, gen))
        binary = fz.round == "binary" and ident % 2 == 1
        self.gen = (BinHostileGen if binary else HostileGen)(self.rng, fz.safe)
        self.pause_until = 0.0
        self.next_at = 0.0

    def on_data(self, data):
        pass

    def on_error(self, what):
        self.close()

    def close(self, reset=False):
        self.fz.rejected += self.gen.rejected
        self.gen.rejected = 0
        super().close(reset)

    def tick(self, now):
        if self.closed:
            return
        rng = self.rng
        if now < self.pause_until or now < self.next_at:
            return
        self.pause_reading(False)
        if self.pending() > 262144:
            return
        data, count = self.gen.unit()
        if not data:
            return
        self.fz.cmds += count
        self.fz.note_hostile(self.ident, data)
        r = rng.random()
        if r < 0.02:  # abrupt close mid-command
            cut = rng.randrange(len(data) + 1)
            self.out += data[:cut]
            self.flush(now)
            self.close(reset=rng.random() < 0.5)
            return
        if r < 0.04:  # stop reading for a while
            self.pause_reading(True)
            self.pause_until = now + rng.uniform(0.2, 3.0)
        if r < 0.3:
            self.fz.split_send(self, data, rng, now)
        else:
            self.out += data
        self.next_at = now + rng.choice([0, 0, 0.001, 0.005, 0.02])


# ---------------------------------------------------------------------------------------
# the binary round: checkers and hostile connections in memcached's binary protocol

B_GET, B_SET, B_ADD, B_REPLACE, B_DELETE, B_INCR, B_DECR = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
B_GETQ, B_NOOP, B_GETK, B_GETKQ, B_APPEND, B_PREPEND = 0x09, 0x0a, 0x0c, 0x0d, 0x0e, 0x0f
B_SETQ, B_DELETEQ, B_TOUCH, B_GAT, B_GATK = 0x11, 0x14, 0x1c, 0x1d, 0x23
B_FLUSH_OPS = (0x08, 0x18)  # never sent: they would empty the checkers' keys
ST_OK, ST_ENOENT, ST_EEXISTS, ST_NOT_STORED = 0x00, 0x01, 0x02, 0x05


def bin_packet(op, key=b"", ext=b"", val=b"", opaque=0, cas=0):
    return bytes([0x80, op]) + len(key).to_bytes(2, "big") + bytes([len(ext), 0, 0, 0]) + \
        (len(ext) + len(key) + len(val)).to_bytes(4, "big") + opaque.to_bytes(4, "big") + \
        cas.to_bytes(8, "big") + ext + key + val


class BinChecker(Checker):
    """A checker in the binary protocol: the same model and keys, each reply checked for
    its opcode, opaque, status, flags, key and value; quiet commands answered only on
    failure (getq: never on a miss), a noop closing each batch of them."""

    def gen(self):
        ops = [(self.b_store, 24), (self.b_get, 24), (self.b_delete, 6), (self.b_arith, 8),
               (self.b_concat, 5), (self.b_cas, 5), (self.b_touch, 5), (self.b_quiet_gets, 6)]
        r = self.rng.randrange(sum(w for _, w in ops))
        for fn, w in ops:
            if r < w:
                res = fn()
                if res:
                    return res
                self.gen_keys = []
                return self.b_store()
            r -= w
        return self.b_store()

    def expect_bin(self, cmd, op, opaque, status, **kw):
        return Expect(cmd, "bin", op=op, opaque=opaque, status=status,
                      want=kw.pop("want", "op 0x%02x status 0x%04x" % (op, status)), **kw)

    def opq(self):
        return self.rng.randrange(1 << 32)

    def b_store(self):
        rng = self.rng
        k = self.rand_key()
        op = rng.choice([B_SET, B_SET, B_SETQ, B_ADD, B_REPLACE])
        v = str(rng.choice([0, 7, 12345, rng.randrange(1 << 62)])).encode() \
            if rng.random() < 0.2 else value_bytes(rng)
        flags = rng.choice([0, 1, 65535, rng.randrange(1 << 32)])
        ttl = rng.choice([0, 0, 3600, 86400])
        o = self.opq()
        cmd = bin_packet(op, k.encode(), flags.to_bytes(4, "big") + ttl.to_bytes(4, "big"), v, o)
        cur = self.model.get(k)
        ok = op in (B_SET, B_SETQ) or (op == B_ADD) == (cur is None)
        if ok:
            self.model[k] = Entry(v, flags, ttl)
        if op == B_SETQ:
            return cmd, []
        st = ST_OK if ok else (ST_EEXISTS if op == B_ADD else ST_ENOENT)
        return cmd, [self.expect_bin(cmd, op, o, st)]

    def b_get(self, quiet=False):
        rng = self.rng
        k = self.rand_key()
        if quiet:
            op = rng.choice([B_GETQ, B_GETKQ])
        else:
            op = rng.choice([B_GET, B_GET, B_GETK, B_GAT, B_GATK])
        ext = b""
        cur = self.model.get(k)
        if op in (B_GAT, B_GATK):
            ttl = rng.choice([0, 3600, 86400])
            ext = ttl.to_bytes(4, "big")
            if cur is not None:
                cur = self.model[k] = cur.copy()
                cur.ttl = ttl
        o = self.opq()
        cmd = bin_packet(op, k.encode(), ext, b"", o)
        withkey = op in (B_GETK, B_GETKQ, B_GATK)
        if cur is None:
            if quiet:
                return cmd, []
            return cmd, [self.expect_bin(cmd, op, o, ST_ENOENT, key=k if withkey else None)]
        return cmd, [self.expect_bin(cmd, op, o, ST_OK, entry=cur, key=k if withkey else None,
                                     want="hit: %s" % cur.describe())]

    def b_quiet_gets(self):
        out, ex = b"", []
        for _ in range(self.rng.randrange(1, 6)):
            c, e = self.b_get(quiet=True)
            out += c
            ex += e
        o = self.opq()
        noop = bin_packet(B_NOOP, opaque=o)
        return out + noop, ex + [self.expect_bin(noop, B_NOOP, o, ST_OK)]

    def b_delete(self):
        k = self.rand_key()
        cur = self.model.pop(k, None)
        o = self.opq()
        cmd = bin_packet(B_DELETE, k.encode(), opaque=o)
        return cmd, [self.expect_bin(cmd, B_DELETE, o, ST_OK if cur else ST_ENOENT)]

    def b_arith(self):
        rng = self.rng
        k = self.rand_key()
        cur = self.model.get(k)
        if cur is not None and cur.num is None:
            return None
        delta = rng.choice([0, 1, 7, 1000, 1 << 40])
        incr = self.incr_ok(cur, delta)
        initial = rng.choice([0, 5, 1 << 33])
        create = rng.random() < 0.5
        expiry = 0 if create else 0xffffffff
        o = self.opq()
        op = B_INCR if incr else B_DECR
        cmd = bin_packet(op, k.encode(), delta.to_bytes(8, "big") + initial.to_bytes(8, "big") +
                         expiry.to_bytes(4, "big"), b"", o)
        if cur is None and not create:
            return cmd, [self.expect_bin(cmd, op, o, ST_ENOENT)]
        if cur is None:
            new = initial
            self.model[k] = Entry(str(new).encode(), 0, 0)
        else:
            new = cur.num + delta if incr else max(0, cur.num - delta)
            self.set_counter(k, cur, new)
        return cmd, [self.expect_bin(cmd, op, o, ST_OK, num=new, want="counter %d" % new)]

    def b_concat(self):
        rng = self.rng
        k = self.rand_key()
        cur = self.model.get(k)
        if cur is not None and cur.value is None:
            return None
        op = rng.choice([B_APPEND, B_PREPEND])
        v = value_bytes(rng)[:rng.choice([5, 100, 5000])]
        o = self.opq()
        cmd = bin_packet(op, k.encode(), b"", v, o)
        if cur is None:
            return cmd, [self.expect_bin(cmd, op, o, ST_NOT_STORED)]
        self.model[k] = Entry(cur.value + v if op == B_APPEND else v + cur.value, cur.flags, cur.ttl)
        return cmd, [self.expect_bin(cmd, op, o, ST_OK)]

    def b_cas(self):
        rng = self.rng
        cands = [k for k, e in self.model.items() if e.cas is not None]
        if not cands or rng.random() < 0.15:
            k = self.rand_key()
            cur, good, casv = self.model.get(k), False, rng.randrange(1 << 41, 1 << 42)
        else:
            k = rng.choice(sorted(cands))
            self.gen_keys.append(k)
            cur = self.model[k]
            good = rng.random() < 0.75
            casv = cur.cas if good else cur.cas + rng.randrange(1, 1000)
        v = value_bytes(rng)
        flags = rng.randrange(1 << 16)
        o = self.opq()
        cmd = bin_packet(B_SET, k.encode(), flags.to_bytes(4, "big") + bytes(4), v, o, casv)
        if cur is None:
            st = ST_ENOENT
        elif good:
            st = ST_OK
            self.model[k] = Entry(v, flags, 0)
        else:
            st = ST_EEXISTS
        return cmd, [self.expect_bin(cmd, B_SET, o, st)]

    def b_touch(self):
        k = self.rand_key()
        ttl = self.rng.choice([0, 3600, 86400])
        cur = self.model.get(k)
        if cur is not None:
            self.model[k] = cur.copy()
            self.model[k].ttl = ttl
        o = self.opq()
        cmd = bin_packet(B_TOUCH, k.encode(), ttl.to_bytes(4, "big"), b"", o)
        return cmd, [self.expect_bin(cmd, B_TOUCH, o, ST_OK if cur else ST_ENOENT)]

    def end_batch(self):
        return bin_packet(B_NOOP, opaque=7), self.expect_bin(b"noop", B_NOOP, 7, ST_OK)

    def parse(self, exp, pos):
        buf = self.inbuf
        if len(buf) - pos < 24:
            return None
        h = bytes(buf[pos:pos + 24])
        body = int.from_bytes(h[8:12], "big")
        if len(buf) - pos < 24 + body:
            return None
        elen, klen = h[4], int.from_bytes(h[2:4], "big")
        b = bytes(buf[pos + 24:pos + 24 + body])
        ext, key, val = b[:elen], b[elen:elen + klen], b[elen + klen:]
        status = int.from_bytes(h[6:8], "big")
        got = b"magic %02x op %02x status %04x opaque %d ext %s key %s value %s" % (
            h[0], h[1], status, int.from_bytes(h[12:16], "big"), ext.hex().encode(),
            short(key).encode(), short(val, 200).encode())
        if h[0] != 0x81 or h[1] != exp.op or int.from_bytes(h[12:16], "big") != exp.opaque or \
                status != exp.status or elen + klen > body:
            self.fail(exp, got)
        k = getattr(exp, "key", None)
        if k is not None and key != k.encode():
            self.fail(exp, got)
        e = getattr(exp, "entry", None)
        if status == ST_OK and e is not None:
            if len(ext) != 4 or int.from_bytes(ext, "big") != e.flags or not e.matches(val):
                self.fail(exp, got)
            e.cas = int.from_bytes(h[16:24], "big")
        num = getattr(exp, "num", None)
        if num is not None and (len(val) != 8 or int.from_bytes(val, "big") != num):
            self.fail(exp, got)
        return pos + 24 + body


class BinHostileGen(HostileGen):
    """Binary packets on hos* keys, mutated (lengths, magic, opcodes, extras, truncation,
    junk); the stream is framed as the gateway frames it so that no flush opcode ever
    starts a packet, whatever the mutations did to the lengths before it."""

    OPS = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
           0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
           0x1e, 0x20, 0x21, 0x22, 0x23, 0x24, 0x30, 0x50, 0xff]

    def __init__(self, rng, safe):
        super().__init__(rng, safe)
        self.hdr = b""  # a packet header not yet complete, as the gateway sees the stream
        self.left = 0   # bytes of the current packet's body still to come
        self.dead = False  # a byte other than 0x80 began a packet: the gateway closes

    def packet(self):
        rng = self.rng
        op = rng.choice(self.OPS)
        key = self.hkey().encode() if rng.random() < 0.9 else b""
        ext = rng.choice([b"", bytes(4), bytes(8), rng.randbytes(8), rng.randbytes(20)])
        val = self.value(rng.choice([0, 0, 5, 100, 3000, 70000]))
        return bin_packet(op, key, ext, val, rng.randrange(1 << 32), rng.choice([0, 0, 1 << 40]))

    def mutate_bin(self, p):
        rng = self.rng
        b = bytearray(p)
        for _ in range(rng.randrange(0, 3)):
            r = rng.random()
            if len(b) < 24:  # truncated already: only more junk
                b += rng.randbytes(rng.randrange(1, 40)) if r < 0.3 else b""
            elif r < 0.25:  # a length field: key, extras, body
                at = rng.choice([2, 3, 4, 8, 9, 10, 11])
                b[at] = rng.choice([0, 1, 0x7f, 0xff, rng.randrange(256)])
            elif r < 0.35:
                b[0] = rng.choice([0x81, 0x00, ord("g")])
            elif r < 0.55 and len(b) > 24:
                b[rng.randrange(24, len(b))] = rng.randrange(256)
            elif r < 0.7:
                del b[rng.randrange(len(b) + 1):]
            elif r < 0.8:
                b[rng.randrange(24)] = rng.randrange(256)
            else:
                b += rng.randbytes(rng.randrange(1, 40))
        return bytes(b)

    def allowed(self, data):
        """Frame data after what was sent before; False if a flush opcode would begin a
        packet. Updates the framing state only when allowed."""
        hdr, left, dead = self.hdr, self.left, self.dead
        i = 0
        while i < len(data) and not dead:
            if left:
                n = min(left, len(data) - i)
                i += n
                left -= n
                continue
            take = min(24 - len(hdr), len(data) - i)
            hdr += data[i:i + take]
            i += take
            if len(hdr) >= 1 and hdr[0] != 0x80:
                dead = True
            elif len(hdr) >= 2 and hdr[1] in B_FLUSH_OPS:
                return False
            if len(hdr) == 24:
                left = int.from_bytes(hdr[8:12], "big")
                hdr = b""
        self.hdr, self.left, self.dead = hdr, left, dead
        return True

    def unit(self):
        rng = self.rng
        out, count = bytearray(), 0
        for _ in range(rng.choice([1, 1, 2, 5, 20])):
            p = self.packet()
            if rng.random() < 0.5:
                p = self.mutate_bin(p)
            window = (self.tail + bytes(out[-16:]) + p).lower()
            if any(f in window for f in FORBIDDEN) or not self.allowed(p):
                self.rejected += 1
                continue
            out += p
            count += 1
        if out:
            self.tail = bytes(out[-16:])
        return bytes(out), count


# ---------------------------------------------------------------------------------------
# the run

class Loop:
    def __init__(self):
        self.sel = selectors.DefaultSelector()


class Fuzzer:
    def __init__(self, args, rnd, port, gw, gwlog):
        self.args = args
        self.seed = args.seed
        self.safe = args.safe
        self.skip = set(args.skip)
        self.round = rnd
        self.port = port
        self.gw = gw
        self.gwlog = gwlog
        self.loop = Loop()
        self.cmds = 0
        self.verified = 0
        self.rejected = 0
        self.stopping = False
        self.recent = collections.deque(maxlen=300)
        self.log_pos = 0

    def note_hostile(self, ident, data):
        self.recent.append((time.time(), ident, data))

    def split_send(self, conn, data, rng, now):
        """Queue data in 1..8 pieces, up to 20 ms apart."""
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 8)))
        at, last = now, 0
        for c in cuts + [len(data)]:
            if c > last:
                conn.send_later(data[last:c], at)
                at += rng.choice([0, 0.001, 0.005, 0.02])
                last = c

    def scan_log(self):
        """Fail on a sanitizer report or a backend desync in the part of the gateway log
        not yet scanned."""
        with open(self.gwlog, "rb") as f:
            start = max(0, self.log_pos - 64)  # a report may straddle two scans
            f.seek(start)
            chunk = f.read()
        self.log_pos = start + len(chunk)
        for rx, what in ((SANITIZER_RE, "sanitizer report"), (DESYNC_RE, "backend desync")):
            m = rx.search(chunk)
            if m:
                at = chunk.rfind(b"\n", 0, m.start()) + 1
                raise Failure("round %s: %s in %s:\n%s" % (
                    self.round, what, self.gwlog, chunk[at:at + 600].decode("latin-1")))

    def dump_recent(self):
        path = os.path.join(self.args.log_dir, "hostile-%s.log" % self.round)
        with open(path, "wb") as f:
            t0 = self.recent[0][0] if self.recent else 0
            for t, ident, data in self.recent:
                f.write(b"+%.3fs hostile %d: %s\n" % (t - t0, ident, short(data, 2000).encode()))
        return path

    def run(self, seconds):
        args = self.args
        checkers = [(BinChecker if self.round == "binary" and i % 2 == 1 else Checker)(self, i)
                    for i in range(args.checkers)]
        hostiles = [Hostile(self, i, 0) for i in range(args.conns)]
        gens = [0] * args.conns
        start = self.start = time.time()
        next_report = start + 10
        next_scan = start + 1
        try:
            while True:
                now = time.time()
                if now - start >= seconds:
                    break
                for i, h in enumerate(hostiles):
                    if h.closed:
                        gens[i] += 1
                        hostiles[i] = h = Hostile(self, i, gens[i])
                    h.tick(now)
                    h.flush(now)
                for c in checkers:
                    c.tick(now)
                    c.flush(now)
                busy = any(c.out for c in checkers + hostiles)
                for key, _ in self.loop.sel.select(0.001 if busy else 0.005):
                    key.data.readable()
                if now >= next_scan:
                    next_scan = now + 1
                    if self.gw.poll() is not None:
                        raise Failure("round %s: the gateway died (exit status %s)" % (
                            self.round, self.gw.returncode))
                    self.scan_log()
                if now >= next_report:
                    next_report = now + 10
                    log("round %s: %.0f s, %d commands, %d checker replies verified" % (
                        self.round, now - start, self.cmds, self.verified))
            # drain: the checkers' last replies
            deadline = time.time() + REPLY_TIMEOUT
            for h in hostiles:
                h.close()
            while any(c.expect for c in checkers):
                now = time.time()
                for c in checkers:
                    if c.expect and now > deadline:
                        c.fail(c.expect[0], b"(no reply within %.0f s)" % REPLY_TIMEOUT)
                    c.flush(now)
                for key, _ in self.loop.sel.select(0.01):
                    key.data.readable()
        except Failure:
            log("hostile traffic just before the failure: %s" % self.dump_recent())
            raise
        finally:
            self.stopping = True
            for c in checkers + hostiles:
                c.close()
        return time.time() - start


def gateway_version(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"version\r\n")
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        return data
    finally:
        s.close()


def memcached_stat(port, name):
    """One counter of memcached's `stats` (bytes), or None when it does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"stats\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                d = s.recv(65536)
                if not d:
                    return None
                buf += d
    except OSError:
        return None
    for line in buf.split(b"\r\n"):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[1] == name:
            return parts[2]
    return None


def run_round(args, rnd, seconds):
    procs = Procs()
    try:
        ports = (start_memcached(procs, args.log_dir, 1), start_memcached(procs, args.log_dir, 2))
        gw, pg, gwlog = start_gateway(procs, args, args.log_dir, rnd, ports)
        log("round %s: memcached on %d and %d, gateway %s on %d (log %s)" % (
            rnd, ports[0], ports[1], args.bin, pg, gwlog))
        fz = Fuzzer(args, rnd, pg, gw, gwlog)
        problems = []  # the root cause (a sanitizer report, a dead gateway) first
        try:
            took = fz.run(seconds)
        except Failure as e:
            problems.append(str(e))
            took = time.time() - fz.start
        time.sleep(0.2)  # a crash report is still being written
        # whatever happened: the gateway must still answer, exit cleanly, and say nothing
        if gw.poll() is not None:
            problems.insert(0, "round %s: the gateway died (exit status %s)" % (rnd, gw.returncode))
        else:
            try:
                v = gateway_version(pg)
                if not v.startswith(b"VERSION "):
                    problems.append("round %s: `version` got %s" % (rnd, short(v)))
            except OSError as e:
                problems.append("round %s: `version` failed: %s" % (rnd, e))
            rc, killed = procs.stop(gw, 10.0)
            if killed:
                problems.append("round %s: the gateway did not exit within 10 s of SIGTERM" % rnd)
            elif rc != 0:
                problems.append("round %s: the gateway exited with status %d on SIGTERM" % (rnd, rc))
        try:
            fz.log_pos = 0
            fz.scan_log()
        except Failure as e:
            problems.insert(0, str(e))
        if problems:  # a key memcached evicted is a miss no gateway can help: say so
            for port in ports:
                ev = memcached_stat(port, b"evictions")
                if ev not in (None, b"0"):
                    problems.append("round %s: memcached on %d evicted %s items (-m 64)" % (
                        rnd, port, ev.decode()))
        failure = "\n".join(problems) if problems else None
        log("round %s: %s, %d commands sent (%d rejected as unsafe), %d checker replies verified, "
            "%.0f commands/s" % (rnd, "FAILED" if failure else "passed", fz.cmds, fz.rejected,
                                 fz.verified, fz.cmds / took if took else 0))
        return failure
    finally:
        procs.stop_all()


def triage(args):
    """Find the hostile input that breaks a backend connection: one gateway worker, each
    hostile unit on a connection of its own, then a probe (set and get of 8 keys on
    another connection) and a look at the gateway log; stop at the first unit after which
    the probe fails or the gateway warns about a backend. Prints that unit."""
    procs = Procs()
    try:
        ports = (start_memcached(procs, args.log_dir, 1), start_memcached(procs, args.log_dir, 2))
        gw, pg, gwlog = start_gateway(procs, args, args.log_dir, "triage", ports, threads=1)
        gen = HostileGen(random.Random("%s:triage" % args.seed), args.safe)
        probe = socket.create_connection(("127.0.0.1", pg), timeout=REPLY_TIMEOUT)
        keys = ["chkprobe%d" % i for i in range(8)]
        want = b"".join(b"VALUE %s 0 2\r\nok\r\n" % k.encode() for k in keys) + b"END\r\n"
        state = {"pos": os.path.getsize(gwlog)}

        def breaks(data):
            s = socket.create_connection(("127.0.0.1", pg), timeout=1)
            try:
                s.sendall(data)
                s.settimeout(0.02)
                while s.recv(65536):
                    pass
            except OSError:
                pass
            s.close()
            time.sleep(0.05)  # let the gateway finish with it before the probe
            req = b"".join(b"set %s 0 0 2\r\nok\r\n" % k.encode() for k in keys)
            req += b"get " + " ".join(keys).encode() + b"\r\n"
            probe.sendall(req)
            got = b""
            expect = b"STORED\r\n" * len(keys) + want
            try:
                while len(got) < len(expect) and not got.count(b"ERROR"):
                    d = probe.recv(65536)
                    if not d:
                        break
                    got += d
            except OSError:
                pass
            time.sleep(0.05)
            with open(gwlog, "rb") as f:
                f.seek(state["pos"])
                new = f.read()
                state["pos"] += len(new)
            warn = re.search(rb"warn: backend[^\n]*", new)
            if got != expect or warn:
                return "probe got %s%s" % (short(got, 300), "; gateway log: " +
                                            warn.group(0).decode("latin-1") if warn else "")
            return None

        for i in range(args.triage):
            data, _ = gen.unit()
            why = breaks(data)
            if not why:
                continue
            # minimize: drop runs of lines while it still breaks
            lines = data.splitlines(keepends=True)
            n = max(1, len(lines) // 2)
            while n >= 1:
                j = 0
                while j < len(lines):
                    cand = lines[:j] + lines[j + n:]
                    if cand and breaks(b"".join(cand)):
                        lines = cand
                    else:
                        j += n
                n //= 2
            small = b"".join(lines)
            path = os.path.join(args.log_dir, "triage-input.bin")
            with open(path, "wb") as f:
                f.write(small)
            with open(os.path.join(args.log_dir, "triage-unit.bin"), "wb") as f:
                f.write(data)
            log("unit %d (%d bytes) broke a backend connection (%s); minimized to %d bytes "
                "(saved in %s): %s" % (i, len(data), why, len(small), path, short(small, 800)))
            return 1
        log("%d hostile units, none broke a backend connection" % args.triage)
        return 0
    finally:
        procs.stop_all()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600, help="total run time (split over rounds)")
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--bin", default="./mintgate-asan")
    ap.add_argument("--conns", type=int, default=16, help="hostile connections")
    ap.add_argument("--checkers", type=int, default=4)
    ap.add_argument("--rounds", default="plain,lua,binary,near",
                    help="plain (-s), lua (config script), binary (-s, half the connections "
                    "binary), near (the lua script with the near cache on every key)")
    ap.add_argument("--safe", action="store_true",
                    help="leave out the mutations known to desync (junk meta flags, \\r\\r\\n)")
    ap.add_argument("--skip", default="", help="checker families to leave out: b64,samekey")
    ap.add_argument("--log-dir", default=None, help="default: a new directory under /tmp")
    ap.add_argument("--triage", type=int, default=0, metavar="N",
                    help="send N hostile units one by one and report the first that breaks "
                    "a backend connection")
    ap.add_argument("--gw-arg", action="append", default=[], help="extra gateway argument")
    args = ap.parse_args()
    args.skip = [s for s in args.skip.split(",") if s]
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    if not args.log_dir:
        args.log_dir = tempfile.mkdtemp(prefix="mintgate-fuzz-wire.")
    os.makedirs(args.log_dir, exist_ok=True)
    if not os.access(args.bin, os.X_OK):
        log("gateway binary %s not found (make mintgate-asan)" % args.bin)
        return 2
    if args.triage:
        return triage(args)
    rounds = [r for r in args.rounds.split(",") if r]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    log("seed %d, %.0f s, %d checkers + %d hostile connections, %s%s; replay: %s --seed %d" % (
        args.seed, args.seconds, args.checkers, args.conns, "safe mutations" if args.safe else
        "all mutations", ", skip " + ",".join(args.skip) if args.skip else "", sys.argv[0],
        args.seed))
    failures = []
    for rnd in rounds:
        f = run_round(args, rnd, args.seconds / len(rounds))
        if f:
            failures.append(f)
            log("FAILURE (seed %d): %s" % (args.seed, f))
    log("seed %d: %d passed, %d failed (logs in %s)" % (
        args.seed, len(rounds) - len(failures), len(failures), args.log_dir))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
