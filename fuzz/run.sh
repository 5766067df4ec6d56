#!/usr/bin/env bash
# Fuzzes the registration packet parser with libFuzzer + AddressSanitizer.
#   fuzz/run.sh [RUNS]      (default 1000000 executions; extra args go to libFuzzer)
# Compiles Sources/Registration/Messages.swift with the entry in fuzz/FuzzMessages.swift;
# independent of `swift build` / `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
out="${TMPDIR:-/tmp}/edgekit-fuzz-$$"
mkdir -p "$out/corpus"
trap 'rm -rf "$out"' EXIT
# Messages.swift imports EdgeErrors (standard library only: built first as its own module) and
# uses HelloProof only to build HELLOs (fuzz/HelloProofStub.swift stands in; KeySchedule.swift
# would bring SystemCrypto and libcrypto).
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name EdgeErrors -emit-module -emit-module-path "$out/EdgeErrors.swiftmodule" \
  -emit-object -o "$out/EdgeErrors.o" Sources/EdgeErrors/EdgeError.swift 2>&1 | grep -v "Cannot export local symbol" >&2 || true
swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name Registration -I "$out" \
  Sources/Registration/Messages.swift fuzz/HelloProofStub.swift fuzz/FuzzMessages.swift "$out/EdgeErrors.o" -o "$out/fuzz-messages" 2>&1 \
  | grep -v "Cannot export local symbol" >&2 || true
test -x "$out/fuzz-messages"
# Work on a copy so the committed seed corpus stays small; new inputs are merged back minimised.
cp fuzz/corpus/* "$out/corpus/"
"$out/fuzz-messages" -runs="$runs" -max_len=1400 -print_final_stats=1 "$@" "$out/corpus" 2>&1 | tee "$out/log" | grep -E "^(#[0-9]+.*(DONE|pulse)|stat::|==[0-9]+==ERROR|SUMMARY)" || true
if grep -q "ERROR\|deadly signal\|SUMMARY: " "$out/log"; then
  echo "fuzz/run.sh: a crash was found; see the log above" >&2
  exit 1
fi
if [ "${FUZZ_MERGE:-0}" = 1 ]; then
  "$out/fuzz-messages" -merge=1 fuzz/corpus "$out/corpus" >/dev/null 2>&1
fi
