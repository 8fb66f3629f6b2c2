#!/bin/sh
# spec/run_reference.sh [busted args...]: run the specs that hold memcached's expected
# answers (classic commands, meta commands, the bad-input table) against one plain
# memcached instead of the gateway (MINTGATE_REFERENCE=1), so that a wrong expectation
# fails here even when the gateway agrees with it. Results go to
# build/results/busted-reference.txt. The tables are written for memcached 1.6.18; rows
# where the gateway deliberately differs carry memcached's own lines.
cd "$(dirname "$0")/.." || exit 2
echo "run_reference: $(${MEMCACHED_BIN:-memcached} -V 2>&1 | head -n 1)"
MINTGATE_REFERENCE=1
export MINTGATE_REFERENCE
exec sh spec/run_busted.sh reference spec/e2e/commands_spec.lua spec/e2e/meta_spec.lua \
    spec/e2e/bad_input_spec.lua "$@"
