#!/usr/bin/env bash
# The aarch64 agent (issue 15.3; docs/cross-build.md): time of the cross build with the toolchain
# cached and an empty build folder, time of a build with nothing changed, and the stripped binary's
# size, each beside its target. Needs root (the script's chroot); builds the toolchain first when
# the cache has none (its time is printed too, as "cold toolchain").
#   BENCH_CACHE   cache folder holding aarch64-toolchain-* (default: $EDGEKIT_CACHE, else cache/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE="${BENCH_CACHE:-${EDGEKIT_CACHE:-$ROOT/cache}}"
OUT="$ROOT/.build/appliance-arm64/edgekit-agent"
load() { cut -d' ' -f1 /proc/loadavg; }
seconds() { local started=$SECONDS; "$@" >/dev/null 2>&1 || { echo "bench/arm64-agent.sh: $* failed" >&2; exit 1; }; echo $((SECONDS - started)); }

if ! ls -d "$CACHE"/aarch64-toolchain-*/complete >/dev/null 2>&1; then
  at=$(load)
  echo "cold toolchain + first build: $(seconds scripts/aarch64-agent.sh --cache "$CACHE" --out "$OUT" "$ROOT") s [load $at]"
fi
# The script keeps SwiftPM's build folder per source checkout in the chroot (docs/cross-build.md,
# "Cache"): removing it makes the next build a cold one with the toolchain cached.
slot="$(basename "$ROOT" | tr -c 'A-Za-z0-9._\n-' '_')-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
for toolchain in "$CACHE"/aarch64-toolchain-*/; do rm -rf "$toolchain/chroot/build/$slot/scratch"; done
at=$(load)
echo "agent, toolchain cached, empty build folder: $(seconds scripts/aarch64-agent.sh --cache "$CACHE" --out "$OUT" "$ROOT") s [load $at] (target: a few minutes; issue 15 saw 2-4 min)"
at=$(load)
echo "agent, nothing changed: $(seconds scripts/aarch64-agent.sh --cache "$CACHE" --out "$OUT" "$ROOT") s [load $at] (target: seconds)"
echo "size: $(stat -c %s "$OUT") bytes stripped, $(file -b "$OUT" | cut -d, -f1-2) (target: report; issue 20 asks <= 20 MiB for the appliance agent)"
