#!/usr/bin/env bash
# Image weight (issue 20): what fills a site image, by category, and its allocated size (what
# `bmaptool copy` writes) beside the target of 450 MB for the x86-64 site image.
#
#   bench/image-weight.sh                       build site-b of profiles/example (release edgekit,
#                                               static stripped agent) and report on it
#   bench/image-weight.sh SITE.img SITE.rootfs.tar.zst   report on an image already built
#
#   BENCH_WORK   work folder (default /var/tmp/edgekit-bench-weight); its cache/ is kept, so a
#                second run only stamps. The package cache is seeded from the test cache's.
#   BENCH_BOARD  the board of the built site (default pc-uefi; pc-bios also builds)
#
# Sizes are allocated bytes (MB = 10^6 bytes): files as unpacked from the image's own tar layers
# onto this machine's file system (4 KiB blocks, as the image's ext4), partitions as the image file's
# data ranges. Needs python3, zstd, sfdisk and mtools; building needs root (mmdebstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${BENCH_WORK:-/var/tmp/edgekit-bench-weight}
TARGET_MB=450
mkdir -p "$WORK"
log() { printf 'bench: %s\n' "$*" >&2; }

if [ $# -eq 2 ]; then
  IMG=$1
  TAR=$2
else
  for product in edgekit edgekit-agent; do
    swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
  done
  BIN=$(swift build -c release --show-bin-path)
  mkdir -p .build/appliance && strip -o .build/appliance/edgekit-agent "$BIN/edgekit-agent"
  SECRETS=$WORK/secrets
  [ -f "$SECRETS/master.key" ] || "$BIN/edgekit" keys init --plan profiles/example --secrets "$SECRETS" >&2
  if [ ! -d "$WORK/cache/debs" ] && [ -d "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" ]; then
    mkdir -p "$WORK/cache" && cp -al "${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}/debs" "$WORK/cache/debs"
  fi
  PLAN=profiles/example
  if [ "${BENCH_BOARD:-pc-uefi}" != pc-uefi ]; then
    PLAN=$WORK/plan && rm -rf "$PLAN" && mkdir -p "$PLAN"
    sed "s/^    vrrp_id: 52$/    vrrp_id: 52\n    board: $BENCH_BOARD/" profiles/example/plan.yaml >"$PLAN/plan.yaml"
  fi
  log "building site-b (${BENCH_BOARD:-pc-uefi}) into $WORK/out"
  rm -rf "$WORK/out"
  "$BIN/edgekit" image build --plan "$PLAN" --secrets "$SECRETS" --site site-b --out "$WORK/out" --cache "$WORK/cache" \
    --agent "$ROOT/.build/appliance/edgekit-agent" --overlays "$ROOT/overlays" >/dev/null
  IMG=$WORK/out/site-b.img
  TAR=$WORK/out/site-b.rootfs.tar.zst
fi

TREE=$(mktemp -d "$WORK/tree.XXXXXX")
ESP=$(mktemp -d "$WORK/esp.XXXXXX")
trap 'rm -rf "$TREE" "$ESP"' EXIT
zstd -dc "$TAR" | tar -x -C "$TREE" --numeric-owner
ESP_START=$(sfdisk -J "$IMG" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print([p["start"] for p in t["partitions"] if p["name"] == "esp"][0] * t.get("sectorsize", 512))')
mcopy -s -n -i "$IMG@@$ESP_START" '::/*' "$ESP/"

echo "image: $IMG, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$IMG" "$TREE" "$ESP" "$TARGET_MB" <<'PY'
import fnmatch, json, os, subprocess, sys

image, tree, esp, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
MB = 1e6

def allocated_ranges(path, start, end):
    """Bytes of [start, end) of `path` that hold data (SEEK_DATA / SEEK_HOLE)."""
    total = 0
    with open(path, "rb") as f:
        fd = f.fileno()
        offset = start
        while offset < end:
            try:
                data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            total += hole - data
            offset = hole
    return total

table = json.loads(subprocess.run(["sfdisk", "-J", image], capture_output=True, check=True, text=True).stdout)["partitiontable"]
sector = table.get("sectorsize", 512)
size = os.path.getsize(image)
whole = allocated_ranges(image, 0, size)
parts = {p["name"]: allocated_ranges(image, p["start"] * sector, (p["start"] + p["size"]) * sector) for p in table["partitions"]}

# Files of the root, each counted once (hard links), in the first category that claims it: by
# path first, then by the Debian package that installed it (/var/lib/dpkg/info/*.list).
owner = {}
info = os.path.join(tree, "var/lib/dpkg/info")
for name in os.listdir(info):
    if name.endswith(".list"):
        package = name[:-5].split(":")[0]
        for line in open(os.path.join(info, name), errors="replace"):
            owner.setdefault(line.rstrip("\n"), package)
# /lib, /bin, /sbin are symlinks into /usr (merged /usr): packages list either spelling.
def package_of(path):
    if path in owner:
        return owner[path]
    for short in ("/lib/", "/bin/", "/sbin/"):
        if path.startswith("/usr" + short) and path[4:] in owner:
            return owner[path[4:]]
    return None

categories = [
    ("edgekit-agent (static Swift, stripped)", ["/usr/local/bin/edgekit-agent"], []),
    ("kernel modules (/usr/lib/modules)", ["/usr/lib/modules/"], []),
    ("firmware (/usr/lib/firmware)", ["/usr/lib/firmware/"], []),
    ("kernel and initrd in the root's /boot", ["/boot/"], []),
    ("docs, man pages, locales", ["/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/"], []),
    ("apt lists and caches", ["/var/lib/apt/", "/var/cache/"], []),
    ("udev hardware database (hwdb.bin and its sources)", ["/usr/lib/udev/hwdb.bin", "/usr/lib/udev/hwdb.d/"], []),
    ("prometheus-node-exporter", [], ["prometheus-node-exporter*"]),
    ("systemd, udev (programs, units, libsystemd-shared)", [], ["systemd*", "udev", "libsystemd*", "libudev*"]),
    ("Perl (perl-base, libperl, perl-modules)", [], ["perl*", "libperl*"]),
    ("initramfs-tools, klibc, busybox (initrd makers)", [], ["initramfs-tools*", "klibc-utils", "libklibc", "busybox"]),
    ("apt, dpkg and dpkg's database", ["/var/lib/dpkg/"], ["apt", "libapt-pkg*", "dpkg", "sqv"]),
    ("OpenSSH", [], ["openssh-*"]),
    ("GRUB for legacy BIOS (pc-bios)", [], ["grub-*", "grub2-*"]),
    ("router daemons and tools (keepalived, radvd, nftables, wireguard-tools, iproute2, net-snmp)",
     [], ["keepalived", "radvd", "nftables", "libnftables*", "wireguard-tools", "iproute2", "libsnmp*"]),
    ("C and C++ runtime, OpenSSL, GLib", [], ["libc6", "libstdc++*", "libgcc*", "libssl*", "openssl*", "libglib*"]),
]
sizes = [0] * (len(categories) + 1)
seen = set()
files_total = 0
for directory, folders, files in os.walk(tree):
    for entry in folders + files:
        full = os.path.join(directory, entry)
        st = os.lstat(full)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        path = full[len(tree):]
        blocks = st.st_blocks * 512
        files_total += blocks
        index = len(categories)
        for i, (_, prefixes, packages) in enumerate(categories):
            if any(path == p or path.startswith(p) for p in prefixes):
                index = i
                break
        else:
            package = package_of(path)
            if package:
                for i, (_, _, packages) in enumerate(categories):
                    if any(fnmatch.fnmatch(package, p) for p in packages):
                        index = i
                        break
        sizes[index] += blocks

print(f"site image: {size / MB:.1f} MB raw, {whole / MB:.1f} MB allocated (target <= {target} MB: {'met' if whole <= target * MB else 'MISSED'})")
for name, value in parts.items():
    print(f"  partition {name}: {value / MB:.1f} MB allocated")
print(f"  partition table and gaps: {(whole - sum(parts.values())) / MB:.1f} MB")
print("root file system, files by category (allocated):")
rows = [(categories[i][0] if i < len(categories) else "everything else (shared libraries, coreutils, bash, …)", sizes[i])
        for i in range(len(sizes))]
for label, value in rows:
    print(f"  {value / MB:7.1f} MB  {label}")
print(f"  {files_total / MB:7.1f} MB  all files")
print(f"  {(parts.get('edgekit-root', 0) - files_total) / MB:7.1f} MB  ext4 metadata: the root partition less its files (approximate: the image's ext4 and this machine's file system allocate small files and folders alike, not the journal)")
print("EFI system partition, files:")
for entry in sorted(os.listdir(esp)):
    full = os.path.join(esp, entry)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(full) for f in fs) if os.path.isdir(full) else os.path.getsize(full)
    print(f"  {total / MB:7.1f} MB  {entry}")
PY
