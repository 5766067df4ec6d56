#!/usr/bin/env bash
# Fuzzes the plan loader (YAML → checked Plan) with libFuzzer + AddressSanitizer.
#   fuzz/run-plan.sh [RUNS]   (default 1000000 executions; extra args go to libFuzzer)
# Compiles libyaml (Yams' CYaml), Yams and Sources/EdgeModel with the entry in fuzz/FuzzPlan.swift;
# independent of `swift build` / `swift test`, but it needs Yams checked out in .build/checkouts
# (any `swift build` does that). Fails if an input crashes or takes longer than 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
yams=.build/checkouts/Yams/Sources
test -d "$yams/Yams" || { echo "fuzz/run-plan.sh: $yams missing; run swift build once" >&2; exit 1; }
out="${TMPDIR:-/tmp}/edgekit-fuzz-plan-$$"
mkdir -p "$out/corpus" "$out/obj"
trap 'rm -rf "$out"' EXIT
quiet() { grep -v "Cannot export local symbol" >&2 || true; }
for c in "$yams"/CYaml/src/*.c; do
  clang -O1 -g -fsanitize=fuzzer-no-link,address -DYAML_DECLARE_STATIC -I "$yams/CYaml/include" \
    -c "$c" -o "$out/obj/$(basename "$c" .c).o"
done
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name Yams -D SWIFT_PACKAGE -emit-module -emit-module-path "$out/Yams.swiftmodule" \
  -emit-library -static -Xcc -DYAML_DECLARE_STATIC -I "$yams/CYaml/include" "$yams"/Yams/*.swift -o "$out/libYams.a" 2>&1 | quiet
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name EdgeModel -I "$out" -I "$yams/CYaml/include" \
  -Xcc -DYAML_DECLARE_STATIC Sources/EdgeModel/*.swift fuzz/FuzzPlan.swift "$out/libYams.a" "$out"/obj/*.o \
  -o "$out/fuzz-plan" 2>&1 | quiet
test -x "$out/fuzz-plan"
# Seeds: the example plan and the bad-plan corpus. Work on a copy; new inputs are merged back minimised.
cp profiles/example/plan.yaml "$out/corpus/example.yaml"
cp Tests/EdgeModelTests/Fixtures/bad-plans/*.yaml "$out/corpus/"
cp fuzz/plan-corpus/* "$out/corpus/" 2>/dev/null || true
"$out/fuzz-plan" -runs="$runs" -max_len=4096 -timeout=1 -report_slow_units=1 -rss_limit_mb=2048 \
  -print_final_stats=1 "$@" "$out/corpus" 2>&1 | tee "$out/log" \
  | grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|==[0-9]+==ERROR|SUMMARY|Slowest unit)" || true
if grep -q "ERROR\|deadly signal\|SUMMARY: \|ALARM: working on the last Unit" "$out/log"; then
  echo "fuzz/run-plan.sh: a crash or an input over 1 s was found; see the log above" >&2
  exit 1
fi
if [ "${FUZZ_MERGE:-0}" = 1 ]; then
  mkdir -p fuzz/plan-corpus
  "$out/fuzz-plan" -merge=1 fuzz/plan-corpus "$out/corpus" >/dev/null 2>&1
fi
