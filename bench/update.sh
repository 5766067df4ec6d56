#!/usr/bin/env bash
# Update bundle figures (issue 21), each beside its target and the load it ran at:
#   full bundle size (compressed) for the example plan's site-b on pc-uefi;
#   time to make a bundle from a cached base (the system level built anew for the version, then
#     the bundle), and the bundle step alone from a cached system level;
#   time for the router's agent (the appliance binary) to check the bundle (signature, stamp,
#     version, every member's SHA-256);
#   time for the agent to install it (checks, zstd decode onto slot B, fsync, read back, kernel and
#     initrd, entry) on this machine's disk, slot B a file (the qemu figures, reboot to blessed
#     under emulation, come from UpdateBootTests);
#   the delta when only the agent changed (target <= 10 % of the full bundle): not built yet.
# Needs a cached Debian base for pc-uefi (./build.sh or ./build.sh test makes one); the bench builds
# its system levels in a scratch cache holding hard links of the cached bases, removed at the end.
#
#   BENCH_CACHE   image cache whose bases are used (default: the suite's, /var/tmp/edgekit-test-cache)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${BENCH_CACHE:-${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}}
# The figures are the system level's and the bundle's: the cached base is used as it is, not built
# anew because Debian published since (the suite's bases record no archive state).
export EDGEKIT_ARCHIVE_CHECK=off
WORK=$(mktemp -d /tmp/edgekit-bench-update.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
seconds() { echo "scale=2; ($2 - $1) / 1" | bc; }

for product in edgekit edgekit-agent; do
  swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
done
BIN=$(swift build -c release --show-bin-path)
mkdir -p .build/appliance && strip -o .build/appliance/edgekit-agent "$BIN/edgekit-agent"
AGENT=$ROOT/.build/appliance/edgekit-agent
"$BIN/edgekit" keys init --plan profiles/example --secrets "$WORK/secrets" >/dev/null 2>&1
mkdir -p "$WORK/cache"
for base in "$CACHE"/base-*/; do cp -al "$base" "$WORK/cache/"; done
COMMON=(--plan profiles/example --secrets "$WORK/secrets" --site site-b --cache "$WORK/cache" --agent "$AGENT" --overlays "$ROOT/overlays")
VERSION=$(date +%s)

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(now)
"$BIN/edgekit" image update "${COMMON[@]}" --system-version "$VERSION" --out "$WORK/out" > /dev/null 2> "$WORK/first.log"
first=$(seconds "$start" "$(now)")
rm -rf "$WORK/out"
start=$(now)
"$BIN/edgekit" image update "${COMMON[@]}" --system-version "$VERSION" --out "$WORK/out" > /dev/null 2> "$WORK/second.log"
second=$(seconds "$start" "$(now)")
BUNDLE=$WORK/out/site-b-$VERSION.update
bytes=$(stat -c %s "$BUNDLE")
root=$(tar -tvf "$BUNDLE" | awk '$6 == "root.img.zst" { print $3 }')

# The router: the image of version 0 as its root, then the check.
"$BIN/edgekit" image build "${COMMON[@]}" --out "$WORK/image" > /dev/null 2>&1
mkdir -p "$WORK/tree"
tar --zstd -xf "$WORK/image/site-b.rootfs.tar.zst" -C "$WORK/tree" ./etc/edgekit ./usr/lib/edgekit
best=""
for _ in 1 2 3 4 5; do
  start=$(now)
  "$AGENT" update --check --root "$WORK/tree" "$BUNDLE" > "$WORK/check.out"
  took=$(seconds "$start" "$(now)")
  if [ -z "$best" ] || [ "$(echo "$took < $best" | bc)" = 1 ]; then best=$took; fi
done

# The install, into a router root as SlotInstallTests builds it: booted from slot A by systemd-boot,
# an ESP, slot B a file as large as the root partition.
mkdir -p "$WORK/tree/proc" "$WORK/tree/sys/firmware/efi/efivars" "$WORK/tree/boot/efi/loader/entries" "$WORK/tree/dev/disk/by-partuuid"
echo "root=PARTUUID=d4c27ba9-7b6e-468d-90b1-64c5b7f1c749 rw" > "$WORK/tree/proc/cmdline"
printf '\006\000\000\000' > "$WORK/tree/sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
touch "$WORK/tree/boot/efi/loader/entries/edgekit-a.conf"
slot=$WORK/tree/dev/disk/by-partuuid/cc0257bc-4d86-4439-bb62-71aa553f66b6
truncate -s "$(tar -xOf "$BUNDLE" manifest.sig | grep -o '"root_bytes":[0-9]*' | cut -d: -f2)" "$slot"
sync
start=$(now)
"$AGENT" update --root "$WORK/tree" "$BUNDLE" > "$WORK/install.out" 2> "$WORK/install.err"
install=$(seconds "$start" "$(now)")

printf '%-62s %-22s %s\n' "figure" "measured" "target"
printf '%-62s %-22s %s\n' "full bundle, site-b on pc-uefi (root zstd, kernel, initrd, SBOM)" "$((bytes / 1000000)) MB ($bytes B)" "reported"
printf '%-62s %-22s %s\n' "  of which the root filesystem, zstd level 3" "$((root / 1000000)) MB" "reported"
printf '%-62s %-22s %s\n' "make a bundle: new version (system level built anew)" "$first s" "reported"
printf '%-62s %-22s %s\n' "make a bundle: system level cached" "$second s" "reported"
printf '%-62s %-22s %s\n' "agent: update --check of the bundle (best of 5)" "$best s" "reported"
printf '%-62s %-22s %s\n' "agent: update (install into slot B, read back; this disk)" "$install s" "reported"
printf '%-62s %-22s %s\n' "delta when only the agent changed" "not built" "<= 10 % of the full bundle"
echo "check said: $(cat "$WORK/check.out")"
echo "install said: $(cat "$WORK/install.out")"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
