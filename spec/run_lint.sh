#!/bin/sh
# spec/run_lint.sh: the lint checks of `make lint`, each counted: clang-format over core/,
# core/test/ and bench/; cppcheck over core/; luacheck over lua/, spec/, examples/; the
# rockspec. Writes "N passed, N failed" to build/results/lint.txt; exits non-zero on any
# failure.
cd "$(dirname "$0")/.." || exit 2
mkdir -p build/results
passed=0; failed=0
check() {
    name=$1; shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1)); echo "lint: $name: ok"
    else
        failed=$((failed + 1)); echo "lint: $name: FAILED"; printf '%s\n' "$out" | head -40
    fi
}
check clang-format clang-format --dry-run --Werror core/*.c core/*.h core/test/*.c core/test/*.h \
    bench/*.c bench/*.h
check cppcheck sh -c 'out=$(cppcheck --quiet --enable=warning,performance --std=c11 -I core core 2>&1); \
    printf "%s" "$out"; [ -z "$out" ]'
check luacheck luacheck --no-color -q lua spec examples
check rockspec luarocks lint mintgate-scm-1.rockspec
# every spec file has its row in spec/README.md
check spec-readme sh -c 'rc=0; for f in spec/unit/*_spec.lua spec/e2e/*_spec.lua; do \
    b=${f#spec/}; grep -q "\`$b\`" spec/README.md || { echo "spec/README.md: no row for $b"; rc=1; }; \
    done; exit $rc'
echo "$passed passed, $failed failed" >build/results/lint.txt
echo "lint: $passed passed, $failed failed"
[ "$failed" = 0 ]
