#!/usr/bin/env bash
# Per board (issue 15): the cold base (mmdebstrap and packing, from a local package cache: nothing
# downloaded), the whole cold build of one site, the per-site stamp from the warm cache (target
# < 1 s) and the site image's size, each printed with the load it ran at. Boards are built one after
# the other, each into a cache of its own. arm64 boards need the aarch64 agent (./build.sh makes it)
# and run their package scripts under qemu-aarch64, so they take several times as long as a PC's.
# Needs root. Takes about 30 minutes with every board.
#
#   BENCH_BOARDS   boards to measure (default: every board this version builds)
#   BENCH_WORK     work folder (default /var/tmp/edgekit-bench-boards); only debs/ is kept
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${BENCH_WORK:-/var/tmp/edgekit-bench-boards}
BOARDS=${BENCH_BOARDS:-pc-uefi pc-bios arm64-uefi rpi}
mkdir -p "$WORK"
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
seconds() { echo "scale=1; ($2 - $1) / 1" | bc; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

for product in edgekit edgekit-agent edgekit-bench; do
  swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
done
BIN=$(swift build -c release --show-bin-path)
mkdir -p .build/appliance && strip -o .build/appliance/edgekit-agent "$BIN/edgekit-agent"
AGENT=$ROOT/.build/appliance/edgekit-agent
ARM64_AGENT=$ROOT/.build/appliance-arm64/edgekit-agent
[ -x "$ARM64_AGENT" ] || ARM64_AGENT=$(scripts/aarch64-agent.sh --cache "${EDGEKIT_CACHE:-$ROOT/cache}" --out "$ARM64_AGENT" "$ROOT")
SECRETS=$WORK/secrets
[ -f "$SECRETS/master.key" ] || "$BIN/edgekit" keys init --plan profiles/example --secrets "$SECRETS" >&2
# The package cache every board's cold build starts from, seeded from the test cache's when there is one.
if [ ! -d "$WORK/debs" ] && [ -d "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" ]; then
  cp -al "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" "$WORK/debs"
fi
mkdir -p "$WORK/debs"
stamped() { while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done; }

for board in $BOARDS; do
  plan=$WORK/plan-$board cache=$WORK/cache-$board out=$WORK/out-$board
  rm -rf "$plan" "$cache" "$out" && mkdir -p "$plan" "$cache"
  sed "s/^    vrrp_id: 52$/    vrrp_id: 52\n    board: $board/" profiles/example/plan.yaml >"$plan/plan.yaml"
  grep -q "board: $board" "$plan/plan.yaml" || { log "site-b's vrrp_id line moved in profiles/example/plan.yaml"; exit 1; }
  cp -al "$WORK/debs" "$cache/debs"
  log "$board: cold build of site-b"
  at=$(load)
  t0=$(now)
  "$BIN/edgekit" image build --plan "$plan" --secrets "$SECRETS" --site site-b --out "$out" --cache "$cache" \
    --agent "$AGENT" --agent-arm64 "$ARM64_AGENT" --overlays "$ROOT/overlays" 2>&1 >/dev/null | stamped >"$WORK/$board.log"
  t1=$(now)
  base_done=$(grep -m1 ': build tree removed' "$WORK/$board.log" | cut -d' ' -f1)
  echo "$board: cold base $(seconds "$t0" "$base_done") s, whole cold build of one site $(seconds "$t0" "$t1") s [load $at]"
  # New packages the board fetched stay for the next board and the next run.
  cp -aln "$cache/debs/." "$WORK/debs/" 2>/dev/null || true
  system=$(ls -d "$cache"/system-*/ | head -1)
  at=$(load)
  echo "$board: $("$BIN/edgekit-bench" stamp "$system" "$WORK/stamp-out" "$board system") [load $at]"
  img=$out/site-b.img
  echo "$board: site image $(stat -c %s "$img") bytes raw, $(( $(stat -c %b "$img") * 512 )) allocated (what bmaptool copy writes)"
  rm -rf "$cache" "$out" "$WORK/stamp-out" "$plan"
done
