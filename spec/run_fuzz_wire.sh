#!/bin/sh
# spec/run_fuzz_wire.sh [BINARY]: a short seeded run of the wire fuzzer (spec/fuzz_wire.py)
# for `make test`: the three rounds (plain, Lua config, binary), all mutations, fixed seed.
# Writes "N passed, N failed" (rounds) to build/results/fuzz-wire.txt.
# Knobs (environment): FUZZ_SECONDS (default 48: 12 s a round), FUZZ_SEED (default 1), FUZZ_ARGS.
cd "$(dirname "$0")/.." || exit 2
bin=${1:-./mintgate-asan}
mkdir -p build/results
result=build/results/fuzz-wire.txt
logs=build/fuzz-wire
rm -rf "$logs"
# shellcheck disable=SC2086
{ python3 spec/fuzz_wire.py --seconds "${FUZZ_SECONDS:-48}" --seed "${FUZZ_SEED:-1}" \
    --bin "$bin" --log-dir "$logs" ${FUZZ_ARGS:-}; echo $? > "$logs.rc"; } | tee "$logs.out"
rc=$(cat "$logs.rc" 2>/dev/null || echo 1)
line=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$logs.out" | tail -n 1)
[ -n "$line" ] || line="0 passed, 1 failed"
[ "$rc" = 0 ] || [ "${line#*, }" != "0 failed" ] || line="0 passed, 1 failed"
echo "$line" > "$result"
echo "wire fuzzer: $line (logs in $logs)"
[ "$rc" = 0 ]
