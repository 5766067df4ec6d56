#!/usr/bin/env bash
# Image targets (issue "Image builder"), printing each figure next to its target:
#   cold base <= 1.2 x a bare mmdebstrap of the same package set;
#   per-site stamp < 1 s with a warm cache, the same within noise for a base twice as large;
#   every image of a 20-site plan from a warm cache < 30 s; sizes of the base and of a site image.
# Needs root (mmdebstrap) and the network to the Debian archive for the first run. Takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${BENCH_WORK:-/var/tmp/edgekit-bench-image}
mkdir -p "$WORK"
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
seconds() { echo "$2 - $1" | bc; }

swift build -c release --static-swift-stdlib >&2
BIN=$(swift build -c release --show-bin-path)
mkdir -p .build/appliance && strip -o .build/appliance/edgekit-agent "$BIN/edgekit-agent"
AGENT=$ROOT/.build/appliance/edgekit-agent
SECRETS=$WORK/secrets
[ -f "$SECRETS/master.key" ] || "$BIN/edgekit" keys init --plan profiles/example --secrets "$SECRETS" >&2
COMMON=(--plan profiles/example --secrets "$SECRETS" --agent "$AGENT" --overlays "$ROOT/overlays")

# 1. Cold base vs bare mmdebstrap, both with the same local package cache (no download in either).
COLD=$WORK/cold-cache
rm -rf "$COLD" && mkdir -p "$COLD"
if [ -d "$WORK/debs" ]; then cp -al "$WORK/debs" "$COLD/debs"; fi
log "cold build (fills the package cache on the first run)"
t0=$(now); "$BIN/edgekit" image build "${COMMON[@]}" --site site-b --out "$WORK/out-cold" --cache "$COLD" >/dev/null 2>"$WORK/cold.log"; t1=$(now)
cold=$(seconds "$t0" "$t1")
rm -rf "$WORK/debs" && cp -al "$COLD/debs" "$WORK/debs"
INCLUDE=$(grep -o '"[a-z0-9.-]*"' Sources/EdgeImage/BaseRecipe.swift | sed -n '/"systemd"/,/"procps"/p' | tr -d '"' | paste -sd, -)
log "bare mmdebstrap with the same packages"
t0=$(now)
mmdebstrap --variant=minbase --arch=amd64 --include="$INCLUDE" --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' --setup-hook="sync-in $WORK/debs /var/cache/apt/archives/" \
  bookworm /dev/null "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" "deb http://deb.debian.org/debian-security bookworm-security main" 2>"$WORK/bare.log"
t1=$(now)
bare=$(seconds "$t0" "$t1")
ratio=$(echo "scale=2; $cold / $bare" | bc)
echo "cold base + first site: ${cold} s; bare mmdebstrap: ${bare} s; ratio ${ratio} (target <= 1.2)"

# 2. Warm stamp, and the same against a system level twice as large.
SYSTEM=$(ls -d "$COLD"/system-*/ | head -1)
"$BIN/edgekit-bench" stamp "$SYSTEM" "$WORK/stamp-out" "cached system"
DOUBLE=$WORK/double-system
rm -rf "$DOUBLE" && mkdir -p "$DOUBLE"
# Twice the tar layers (duplicate members are valid tar; the later copy wins) and a disk whose root
# partition is twice as large, holding the root data twice.
cat "$SYSTEM/rootfs.tar.zst" "$SYSTEM/rootfs.tar.zst" > "$DOUBLE/rootfs.tar.zst"
SITE_START=$(python3 - "$SYSTEM" "$DOUBLE" <<'PY'
import json, os, sys
src, dst = sys.argv[1], sys.argv[2]
layout = json.load(open(os.path.join(src, "layout.json")))
esp, root, site = layout["esp"], layout["root"], layout["site"]
sector = 512
disk = open(os.path.join(src, "disk.img"), "rb")
out = open(os.path.join(dst, "disk.img"), "wb")
total = (2048 + esp + 2 * root + site + 2048) * sector
out.truncate(total)
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
"$BIN/edgekit-bench" checksums "$DOUBLE" "$SITE_START"
"$BIN/edgekit-bench" stamp "$DOUBLE" "$WORK/stamp-out" "system twice as large"

# 3. Every image of a 20-site plan from the warm cache.
PLAN20=$WORK/plan20
rm -rf "$PLAN20" && "$BIN/edgekit" plan init "$PLAN20" --name bench --relay relay.example.net --sites 20 2>/dev/null
[ -f "$WORK/secrets20/master.key" ] || "$BIN/edgekit" keys init --plan "$PLAN20" --secrets "$WORK/secrets20" >&2
rm -rf "$WORK/out20"
t0=$(now)
"$BIN/edgekit" build --plan "$PLAN20" --secrets "$WORK/secrets20" --agent "$AGENT" --overlays "$ROOT/overlays" --cache "$COLD" --out "$WORK/out20" 2>/dev/null
t1=$(now)
echo "every image, stick and the relay bundle of a 20-site plan, warm cache: $(seconds "$t0" "$t1") s (target < 30 s)"

# 4. Sizes.
BASE=$(ls -d "$COLD"/base-*/ | head -1)
raw=$(zstd -dc "$BASE/base.tar.zst" | wc -c)
echo "base rootfs: $(stat -c %s "$BASE/base.tar.zst") bytes compressed, $raw bytes raw (tar)"
IMG=$WORK/out-cold/site-b.img
echo "site image: $(stat -c %s "$IMG") bytes raw, $(( $(stat -c %b "$IMG") * 512 )) bytes allocated (sparse), $(stat -c %s "$WORK/out-cold/site-b.rootfs.tar.zst") bytes tar.zst"
