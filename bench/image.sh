#!/usr/bin/env bash
# Image targets (issue 7), each figure printed beside its target and the load average it ran at:
#   cold base <= 1.2 x a bare mmdebstrap of the same package set (same options, mirrors and local
#     package cache, timed back to back: bare, edgekit, bare);
#   per-site stamp < 1 s from a warm cache, and the same within noise for a base twice as large;
#   every image of a 20-site plan from a warm cache < 30 s;
#   sizes of the base and of a site image.
# Needs root (mmdebstrap) and, on the very first run, the Debian mirror. Takes about 10 minutes.
#
#   BENCH_WORK         work folder (default /var/tmp/edgekit-bench-image); only debs/ is kept
#   BENCH_MAX_LOAD     before each timing, wait (30 s steps, at most 10 min) for the 1-minute load
#                      average to drop below this (default 1.5)
#   BENCH_REFLINK_DIR  a folder on a filesystem with reflinks (XFS, btrfs): the stamp and 20-site
#                      figures are measured there too (stamping clones instead of copying). Without
#                      one at hand: apt-get install xfsprogs; truncate -s 60G F; mkfs.xfs -m reflink=1 F;
#                      mount -o loop F DIR (a sparse file: it takes only what the bench writes)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${BENCH_WORK:-/var/tmp/edgekit-bench-image}
MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
mkdir -p "$WORK"
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
seconds() { echo "scale=1; ($2 - $1) / 1" | bc; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# Waits for a quieter moment; prints the load it starts at.
quiet() {
  local waited=0
  while [ "$(echo "$(cut -d' ' -f1 /proc/loadavg) >= $MAX_LOAD" | bc)" = 1 ] && [ $waited -lt 600 ]; do
    log "load $(load) >= $MAX_LOAD; waiting 30 s"
    sleep 30
    waited=$((waited + 30))
  done
  load
}
free_bytes() { df --output=avail -B1 "$1" | tail -1; }

for product in edgekit edgekit-agent edgekit-relay edgekit-bench; do
  swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
done
BIN=$(swift build -c release --show-bin-path)
mkdir -p .build/appliance && strip -o .build/appliance/edgekit-agent "$BIN/edgekit-agent"
AGENT=$ROOT/.build/appliance/edgekit-agent
SECRETS=$WORK/secrets
[ -f "$SECRETS/master.key" ] || "$BIN/edgekit" keys init --plan profiles/example --secrets "$SECRETS" >&2
COMMON=(--plan profiles/example --secrets "$SECRETS" --agent "$AGENT" --overlays "$ROOT/overlays")
# Timestamps every line a build prints (plain mode: one line per step).
stamped() { while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done; }

# 1. Cold base vs bare mmdebstrap. Both install from the same local package cache (nothing is
#    downloaded in either); seeded from the test cache's, else filled by a first untimed build.
COLD=$WORK/cold-cache
if [ ! -d "$WORK/debs" ]; then
  if [ -d "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" ]; then
    cp -al "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" "$WORK/debs"
  else
    log "first run: filling the package cache (untimed)"
    rm -rf "$COLD" && mkdir -p "$COLD"
    "$BIN/edgekit" image build "${COMMON[@]}" --site site-b --out "$WORK/out-cold" --cache "$COLD" >/dev/null
    cp -al "$COLD/debs" "$WORK/debs"
  fi
fi
mapfile -d '' BARE < <("$BIN/edgekit-bench" mmdebstrap-args "$WORK/debs")
bare() {
  local t0 t1
  t0=$(now)
  SOURCE_DATE_EPOCH=1735689600 mmdebstrap "${BARE[@]}" 2>"$WORK/bare.log"
  t1=$(now)
  seconds "$t0" "$t1"
}
log "bare mmdebstrap (1 of 2)"
load_bare1=$(quiet); bare1=$(bare)
log "edgekit cold build: base, system, first site"
rm -rf "$COLD" "$WORK/out-cold" && mkdir -p "$COLD" && cp -al "$WORK/debs" "$COLD/debs"
load_cold=$(quiet)
t0=$(now)
"$BIN/edgekit" image build "${COMMON[@]}" --site site-b --out "$WORK/out-cold" --cache "$COLD" 2>&1 >/dev/null | stamped >"$WORK/cold.log"
t1=$(now)
cold_total=$(seconds "$t0" "$t1")
# The base is done when its build tree is gone (the last base step).
base_done=$(grep -m1 ': build tree removed' "$WORK/cold.log" | cut -d' ' -f1)
cold_base=$(seconds "$t0" "$base_done")
log "bare mmdebstrap (2 of 2)"
load_bare2=$(quiet); bare2=$(bare)
bare_mean=$(echo "scale=2; ($bare1 + $bare2) / 2" | bc)
ratio=$(echo "scale=2; $cold_base / $bare_mean" | bc)
whole=$(echo "scale=2; $cold_total / $bare_mean" | bc)
echo "cold base: ${cold_base} s vs bare mmdebstrap ${bare1} s / ${bare2} s (mean ${bare_mean} s) = ${ratio} x (target <= 1.2 x) [load ${load_bare1} / ${load_cold} / ${load_bare2}]"
echo "  whole cold build (base + system level + first site): ${cold_total} s = ${whole} x the bare mmdebstrap"
echo "  steps of the cold build:"
sed -n 's/^[0-9.]* /    /p' "$WORK/cold.log"

# 2. Warm stamp, and the same onto a system level twice as large.
SYSTEM=$(ls -d "$COLD"/system-*/ | head -1)
stamp_figures() {  # $1: system level folder, $2: output folder, $3: label
  local at
  at=$(quiet)
  echo "$("$BIN/edgekit-bench" stamp "$1" "$2" "$3") [load $at]"
  rm -rf "$2"
}
stamp_figures "$SYSTEM" "$WORK/stamp-out" "cached system"
# Twice the tar layers (duplicate members are valid tar; the later copy wins) and a disk whose root
# partition is twice as large, holding the root data twice.
double_system() {  # $1: system level folder, $2: new folder
  rm -rf "$2" && mkdir -p "$2"
  cat "$1/rootfs.tar.zst" "$1/rootfs.tar.zst" >"$2/rootfs.tar.zst"
  local site_start
  site_start=$(python3 - "$1" "$2" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
layout = json.load(open(os.path.join(src, "layout.json")))
esp, root, site = layout["esp"], layout["root"], layout["site"]
sector = 512
disk = open(os.path.join(src, "disk.img"), "rb")
out = open(os.path.join(dst, "disk.img"), "wb")
out.truncate((2048 + esp + 2 * root + site + 2048) * sector)
def copy(offset_in, length, offset_out):
    disk.seek(offset_in); out.seek(offset_out)
    remaining = length
    while remaining:
        chunk = disk.read(min(remaining, 1 << 20))
        if chunk.count(0) == len(chunk):
            out.seek(len(chunk), 1)
        else:
            out.write(chunk)
        remaining -= len(chunk)
copy(0, (2048 + esp + root) * sector, 0)
copy(2048 * sector + esp * sector, root * sector, (2048 + esp + root) * sector)
json.dump({"esp": esp, "root": 2 * root, "site": site}, open(os.path.join(dst, "layout.json"), "w"))
print((2048 + esp + 2 * root) * sector)
PY
)
  "$BIN/edgekit-bench" checksums "$2" "$site_start"
}
double_system "$SYSTEM" "$WORK/double-system"
stamp_figures "$WORK/double-system" "$WORK/stamp-out" "system twice as large"
rm -rf "$WORK/double-system"

# 3. Every image, stick and the relay bundle of a 20-site plan from the warm cache. On a filesystem
#    without reflinks every site image is a real copy (~1 GB each): run only when the disk has room.
PLAN20=$WORK/plan20
rm -rf "$PLAN20" && "$BIN/edgekit" plan init "$PLAN20" --name bench --relay relay.example.net --sites 20 2>/dev/null
[ -f "$WORK/secrets20/master.key" ] || "$BIN/edgekit" keys init --plan "$PLAN20" --secrets "$WORK/secrets20" >&2
per_site=$(( $(stat -c %b "$SYSTEM/disk.img") * 512 + $(stat -c %s "$SYSTEM/rootfs.tar.zst") ))
plan_build() {  # $1: plan, $2: secrets, $3: cache, $4: output folder; prints the seconds
  local t0 t1
  rm -rf "$4"
  t0=$(now)
  "$BIN/edgekit" build --plan "$1" --secrets "$2" --agent "$AGENT" --overlays "$ROOT/overlays" \
    --relay-binary "$BIN/edgekit-relay" --cache "$3" --out "$4" 2>/dev/null
  t1=$(now)
  (cd "$4" && sha256sum --quiet -c SHA256SUMS) || log "SHA256SUMS in $4 does not verify"
  rm -rf "$4"
  seconds "$t0" "$t1"
}
twenty_sites() {  # $1: cache, $2: output folder, $3: label
  local at
  at=$(quiet)
  echo "every image, stick and the relay bundle of a 20-site plan, warm cache, $3: $(plan_build "$PLAN20" "$WORK/secrets20" "$1" "$2") s (target < 30 s) [load $at]"
}
FS=$(df --output=fstype "$WORK" | tail -1)
need=$(( 20 * per_site + (4 << 30) ))
if [ "$(free_bytes "$WORK")" -gt "$need" ]; then
  twenty_sites "$COLD" "$WORK/out20" "$FS"
else
  # As many sites as the disk holds with 4 GiB to spare, and what that rate means for 20.
  n=$(( ($(free_bytes "$WORK") - (4 << 30)) / per_site ))
  if [ "$n" -ge 2 ]; then
    rm -rf "$WORK/planN" && "$BIN/edgekit" plan init "$WORK/planN" --name bench --relay relay.example.net --sites "$n" 2>/dev/null
    "$BIN/edgekit" keys init --plan "$WORK/planN" --secrets "$WORK/secretsN" >/dev/null 2>&1 || true
    at=$(quiet)
    took=$(plan_build "$WORK/planN" "$WORK/secretsN" "$COLD" "$WORK/outN")
    echo "20-site plan on $FS: not run ($((need >> 30)) GiB needed, $(( $(free_bytes "$WORK") >> 30 )) GiB free);" \
      "a $n-site plan took $took s, i.e. $(echo "scale=1; $took * 20 / $n" | bc) s for 20 at that rate (target < 30 s) [load $at]"
    rm -rf "$WORK/planN" "$WORK/secretsN"
  else
    echo "20-site plan on $FS: not run ($((need >> 30)) GiB needed, $(( $(free_bytes "$WORK") >> 30 )) GiB free)"
  fi
fi

# 4. The same on a filesystem with reflinks, when given one.
if [ -n "${BENCH_REFLINK_DIR:-}" ]; then
  REFLINK=$BENCH_REFLINK_DIR/edgekit-bench
  rm -rf "$REFLINK" && mkdir -p "$REFLINK/cache"
  cp -a "$COLD"/base-*/ "$COLD"/system-*/ "$REFLINK/cache/"
  fs=$(df --output=fstype "$REFLINK" | tail -1)
  stamp_figures "$REFLINK/cache/$(basename "$SYSTEM")" "$REFLINK/stamp-out" "cached system on $fs"
  double_system "$REFLINK/cache/$(basename "$SYSTEM")" "$REFLINK/double-system"
  stamp_figures "$REFLINK/double-system" "$REFLINK/stamp-out" "system twice as large on $fs"
  rm -rf "$REFLINK/double-system"
  twenty_sites "$REFLINK/cache" "$REFLINK/out20" "$fs (reflinks)"
  rm -rf "$REFLINK"
fi

# 5. Sizes.
BASE=$(ls -d "$COLD"/base-*/ | head -1)
echo "base: $(stat -c %s "$BASE/base.tar.zst") bytes tar.zst, $(zstd -dc "$BASE/base.tar.zst" | wc -c) bytes raw tar;" \
  "ext4 root $(stat -c %s "$BASE/root.ext4") bytes, $(( $(stat -c %b "$BASE/root.ext4") * 512 )) allocated"
IMG=$WORK/out-cold/site-b.img
echo "site image: $(stat -c %s "$IMG") bytes raw, $(( $(stat -c %b "$IMG") * 512 )) allocated (what bmaptool copy writes);" \
  "site-b.rootfs.tar.zst $(stat -c %s "$WORK/out-cold/site-b.rootfs.tar.zst") bytes, $(zstd -dc "$WORK/out-cold/site-b.rootfs.tar.zst" | wc -c) raw"

# Only the package cache is kept (it saves the next run a download).
rm -rf "$COLD" "$WORK/out-cold" "$WORK/stamp-out" "$WORK/out20" "$PLAN20"
