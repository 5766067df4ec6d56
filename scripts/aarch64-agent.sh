#!/usr/bin/env bash
# Cross-builds edgekit-agent for aarch64 (arm64) on an amd64 host (issue 15.3; docs/cross-build.md).
#
# usage: scripts/aarch64-agent.sh [--cache DIR] [--out FILE] [--rebuild] [SOURCE_DIR]
#
# There is no Swift >= 6.1 for aarch64 in Debian, so the agent is built with Debian 13's own
# `swiftlang` (6.0.3), which has both halves a cross build needs:
#   - an amd64 trixie chroot with swiftlang: the compiler, clang and lld, run natively;
#   - an arm64 trixie sysroot (extracted, nothing run) with swiftlang, libc6-dev, libstdc++-14-dev
#     and libssl-dev: the arm64 Swift runtime and static stdlib, and the C libraries to link;
#   - a Swift SDK description (chroot's /opt/aarch64-sdk/swift-sdk.json and toolset.json) that points
#     swiftc at the sysroot (-sdk), its static resource dir (--static-swift-stdlib) and lld.
# Both are built once and kept in CACHE/aarch64-toolchain-KEY (KEY: a hash of the suite, mirrors,
# package lists, SDK description and this script's TOOLCHAIN_VERSION). SOURCE_DIR (default: this
# checkout) is copied into the chroot and built with `swift build -c release --static-swift-stdlib
# --product edgekit-agent`; SwiftPM's build folder stays in the toolchain folder, so an unchanged
# tree rebuilds in seconds. The result is stripped and written to FILE.
#
#   --cache DIR   cache folder (default: $EDGEKIT_CACHE, else the checkout's cache/)
#   --out FILE    where the aarch64 binary goes (default: SOURCE_DIR/.build/appliance-arm64/edgekit-agent)
#   --rebuild     build the toolchain again even if a complete one is cached (e.g. for Debian updates)
#   -h, --help    this text
#
# Needs root (mmdebstrap, chroot, mounts), mmdebstrap and rsync; the first run downloads about 1 GB
# of packages from deb.debian.org (kept in CACHE/debs) and takes a few minutes. Packages SwiftPM
# fetches from github.com come through the host's git `url.*.insteadOf` rules (e.g. a local mirror
# in /opt/swift-packages, mounted read-only into the chroot). The binary's path is printed on
# stdout, progress on stderr; a failure is one line naming the log. Beside FILE, `runtime/` holds
# the arm64 loader and libraries it links (glibc, libstdc++, libcrypto); run the result with
#   QEMU_LD_PREFIX=$(dirname FILE)/runtime qemu-aarch64-static FILE --help
set -euo pipefail

# Bump when the way the toolchain folder is made changes: the key changes and it is built again.
TOOLCHAIN_VERSION=1
SUITE=trixie
MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
# The build machine: the compiler, libc headers for manifests, git for SwiftPM (ca-certificates for
# clones over https when there is no local mirror), strip for aarch64.
CHROOT_PACKAGES=(swiftlang libc6-dev git ca-certificates binutils-aarch64-linux-gnu)
# The target: Swift's arm64 runtime and static stdlib, glibc, libstdc++ (the static stdlib links
# it), libcrypto (EdgeCrypto's module map links "crypto").
SYSROOT_PACKAGES=(swiftlang libc6-dev libstdc++-14-dev libssl-dev)
PRODUCT=edgekit-agent
TRIPLE=aarch64-unknown-linux-gnu
# Where things sit inside the chroot.
SDK_DIR=/opt/aarch64-sdk
SYSROOT_MOUNT=/sysroot

log() { printf 'aarch64-agent: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
invocation="$0 $*"
cache="${EDGEKIT_CACHE:-$ROOT/cache}"
out=""
rebuild=0
source_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) [ $# -ge 2 ] || { log "--cache needs a folder"; exit 2; }; cache="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || { log "--out needs a file name"; exit 2; }; out="$2"; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) log "unknown option \"$1\"; see scripts/aarch64-agent.sh --help"; exit 2 ;;
    *) [ -z "$source_dir" ] || { log "one SOURCE_DIR only (got \"$source_dir\" and \"$1\")"; exit 2; }
       source_dir="$1"; shift ;;
  esac
done
source_dir="${source_dir:-$ROOT}"
[ -f "$source_dir/Package.swift" ] || die "no Package.swift in $source_dir; give the package's folder as SOURCE_DIR"
source_dir=$(cd "$source_dir" && pwd)
out=$(realpath -m "${out:-$source_dir/.build/appliance-arm64/$PRODUCT}")
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, chroot and bind mounts); run: sudo $invocation"
for tool in mmdebstrap rsync chroot findmnt flock setsid sha256sum file; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run ./build.sh deps (or apt-get install mmdebstrap rsync util-linux file)"
done
mkdir -p "$cache" "$(dirname "$out")"
cache=$(cd "$cache" && pwd -P)

# The Swift SDK description, written into the chroot. -sdk goes through the toolset because
# SwiftPM 6.0 passes sdkRootPath only as clang's --sysroot, and swiftc without -sdk misses
# SwiftGlibc; the static resource dir is the arm64 one (SwiftPM passes it as -resource-dir with
# --static-swift-stdlib).
sdk_json() {
  cat <<EOF
{
  "schemaVersion": "4.0",
  "targetTriples": {
    "$TRIPLE": {
      "sdkRootPath": "$SYSROOT_MOUNT",
      "swiftResourcesPath": "$SYSROOT_MOUNT/usr/libexec/swift/lib/swift",
      "swiftStaticResourcesPath": "$SYSROOT_MOUNT/usr/libexec/swift/lib/swift_static",
      "toolsetPaths": ["toolset.json"]
    }
  }
}
EOF
}
toolset_json() {
  cat <<EOF
{
  "schemaVersion": "1.0",
  "rootPath": "/usr/libexec/swift/bin",
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld", "-sdk", "$SYSROOT_MOUNT"] }
}
EOF
}

key=$( { echo "version $TOOLCHAIN_VERSION"; echo "suite $SUITE"; printf '%s\n' "${MIRRORS[@]}";
         echo "chroot ${CHROOT_PACKAGES[*]}"; echo "sysroot ${SYSROOT_PACKAGES[*]}"; sdk_json; toolset_json; } \
       | sha256sum | cut -c1-16)
toolchain="$cache/aarch64-toolchain-$key"
chroot_dir="$toolchain/chroot"
sysroot="$toolchain/sysroot"
partial=""   # the toolchain folder being built, removed if the run fails
child=""     # the long-running command (mmdebstrap, swift build), in its own process group
mounted=()   # mount points, unmounted in reverse order on exit

# Unmounts every mount at or below $1, deepest first; lazily if still busy.
unmount_under() {
  local target
  findmnt -rn -o TARGET | awk -v dir="$1" '$0 == dir || index($0, dir "/") == 1' | sort -r \
    | while IFS= read -r target; do
        umount "$target" 2>/dev/null || umount -l "$target" || log "could not unmount $target"
      done
}

cleanup() {
  local status=$?
  trap - EXIT
  trap '' INT TERM   # cleanup is bounded (10 s at most); a second Ctrl-C must not cut it short
  [ -z "$child" ] || stop_child
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || log "could not unmount ${mounted[i]}"
  done
  if [ -n "$partial" ]; then
    unmount_under "$partial"
    rm -rf --one-file-system "$partial"
  fi
  rm -f "$out.partial-$$"
  exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# Runs a command in its own process group with its output in a log file, and waits for it, so that
# INT/TERM reach this script at once (bash runs traps only between commands) and cleanup can stop
# the whole group.
run() {
  local log_file="$1"; shift
  setsid "$@" </dev/null >"$log_file" 2>&1 &
  child=$!
  local status=0
  wait "$child" || status=$?
  child=""
  return "$status"
}

# Stops the running command as Ctrl-C would (SwiftPM cancels its jobs on SIGINT, mmdebstrap
# cleans up), kills it after 10 s, then kills whatever still runs inside the chroots: SwiftPM starts
# each compiler in a process group of its own.
stop_child() {
  kill -INT -- "-$child" 2>/dev/null || true
  local tries=0 proc
  while kill -0 "$child" 2>/dev/null && [ $tries -lt 20 ]; do sleep 0.5; tries=$((tries + 1)); done
  kill -KILL -- "-$child" 2>/dev/null || true
  wait "$child" 2>/dev/null || true
  for proc in /proc/[0-9]*; do
    case "$(readlink "$proc/root" 2>/dev/null)" in
      "$chroot_dir"|"${partial:-$chroot_dir}/chroot") kill -KILL "${proc#/proc/}" 2>/dev/null || true ;;
    esac
  done
  child=""
}

mount_here() {
  mount "$@" || die "mount $* failed"
  mounted+=("${*: -1}")
}

# A command inside the chroot, with a clean, non-interactive environment.
in_chroot=(chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 CI=true)

# Runs mmdebstrap with the shared package cache (CACHE/debs, as the image builder's base): the
# packages are copied out at HOOK (customize; extract for the extract variant, which runs no
# customize hooks). On failure, dies with mmdebstrap's first E: line.
mmdebstrap_into() {
  local what="$1" log_file="$2" hook="$3"; shift 3
  local debs="$cache/debs"
  mkdir -p "$debs"
  if ! run "$log_file" mmdebstrap --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook="sync-in $debs /var/cache/apt/archives/" \
        --"$hook"-hook="sync-out /var/cache/apt/archives $debs" \
        "$@" "${MIRRORS[@]}"; then
    local cause   # the first E: line; the last ones only say that mmdebstrap failed
    cause=$(grep -m1 '^E:' "$log_file" || tail -1 "$log_file")
    die "mmdebstrap failed making the $what: $cause (full log: $log_file)"
  fi
}

# The sysroot is only extracted: make it usable as --sysroot. Merged /usr (trixie's libc.so linker
# script names /lib/aarch64-linux-gnu/…, which lld looks up inside the sysroot) and absolute
# symlinks made relative, so they resolve inside the sysroot wherever it is mounted.
fix_sysroot() {
  local dir="$1" name link target
  for name in bin sbin lib; do
    [ -e "$dir/$name" ] || [ -L "$dir/$name" ] || ln -s "usr/$name" "$dir/$name"
  done
  find "$dir" -path "$dir/dev" -prune -o -type l -lname '/*' -print | while IFS= read -r link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -s -m --relative-to="$(dirname "$link")" "$dir$target")" "$link"
  done
  # swiftc warns on every file without it; only a version is read on Linux.
  printf '{"Version": "6.0", "CanonicalName": "linux"}\n' >"$dir/SDKSettings.json"
}

make_toolchain() {
  local started=$SECONDS
  partial="$toolchain.partial-$$"
  local stale
  for stale in "$toolchain".partial-*; do   # left by a run that was killed with SIGKILL
    [ -d "$stale" ] || continue
    unmount_under "$stale"
    rm -rf --one-file-system "$stale"
  done
  mkdir -p "$partial"
  # The logs sit beside the folder until it is complete, so a failed build's log is kept.
  log "toolchain $key: amd64 $SUITE chroot with ${CHROOT_PACKAGES[*]} (log: $toolchain.chroot.log)"
  mmdebstrap_into "amd64 chroot" "$toolchain.chroot.log" customize --variant=apt --arch=amd64 \
    --include="$(IFS=,; echo "${CHROOT_PACKAGES[*]}")" "$SUITE" "$partial/chroot"
  log "toolchain $key: arm64 $SUITE sysroot with ${SYSROOT_PACKAGES[*]} (log: $toolchain.sysroot.log)"
  mmdebstrap_into "arm64 sysroot" "$toolchain.sysroot.log" extract --variant=extract --arch=arm64 \
    --include="$(IFS=,; echo "${SYSROOT_PACKAGES[*]}")" "$SUITE" "$partial/sysroot"
  fix_sysroot "$partial/sysroot"
  [ -d "$partial/sysroot/usr/libexec/swift/lib/swift_static/linux/aarch64" ] \
    || die "the arm64 sysroot has no Swift static stdlib at usr/libexec/swift/lib/swift_static/linux/aarch64 (did swiftlang's layout change? see $toolchain.sysroot.log)"
  mkdir -p "$partial/chroot$SDK_DIR" "$partial/chroot$SYSROOT_MOUNT" "$partial/chroot/build"
  sdk_json >"$partial/chroot$SDK_DIR/swift-sdk.json"
  toolset_json >"$partial/chroot$SDK_DIR/toolset.json"
  mv "$toolchain.chroot.log" "$partial/chroot.log"
  mv "$toolchain.sysroot.log" "$partial/sysroot.log"
  echo "$key" >"$partial/complete"
  if [ -e "$toolchain" ]; then
    unmount_under "$toolchain"
    mv "$toolchain" "$toolchain.old-$$"
    rm -rf --one-file-system "$toolchain.old-$$"
  fi
  mv "$partial" "$toolchain"
  partial=""
  log "toolchain $key: built in $((SECONDS - started)) s ($(du -sh "$toolchain" | cut -f1))"
}

# Copies the host's url.*.insteadOf rules (system and root's global git config) into the chroot's
# /etc/gitconfig, and prints the local folders they point at (to be mounted read-only).
mirror_git_rules() {
  local gitconfig="$chroot_dir/etc/gitconfig" scope name value base
  rm -f "$gitconfig"
  command -v git >/dev/null 2>&1 || return 0
  for scope in --system --global; do
    git config "$scope" --get-regexp '^url\..*\.insteadof$' 2>/dev/null || true
  done | while read -r name value; do
    base="${name#url.}"
    base="${base%.insteadof}"
    git config --file "$gitconfig" --add "url.$base.insteadOf" "$value"
    case "$base" in /*) [ -d "$base" ] && echo "${base%/}" ;; esac
  done | sort -u
}

exec 9>"$toolchain.lock"
if ! flock -n 9; then
  log "another build holds $toolchain.lock; waiting"
  flock 9
fi
if [ "$rebuild" -eq 0 ] && [ -f "$toolchain/complete" ]; then
  log "toolchain $key: cached ($toolchain)"
  touch "$toolchain"
else
  make_toolchain
fi

# One build folder per source tree, so the demo and the checkout keep their own caches.
slot="$(basename "$source_dir" | tr -c 'A-Za-z0-9._\n-' '_')-$(printf '%s' "$source_dir" | sha256sum | cut -c1-8)"
build_log="$toolchain/build-$slot.log"
unmount_under "$chroot_dir"   # left by a run that was killed with SIGKILL
mkdir -p "$chroot_dir/build/$slot/src"
excludes=(--exclude=/.build/ --exclude='/.build-*/' --exclude='/.build_*/' --exclude=/.swiftpm/
          --exclude=/.git/ --exclude=/cache/ --exclude=/out/)
case "$cache/" in "$source_dir"/*) excludes+=(--exclude="/${cache#"$source_dir"/}/") ;; esac
# A Package.resolved SwiftPM wrote in the chroot survives when the tree has none.
rsync -a --delete --filter='P /Package.resolved' "${excludes[@]}" "$source_dir/" "$chroot_dir/build/$slot/src/" \
  || die "copying $source_dir into the chroot failed"

# Without /proc the compiler cannot find its own libraries (its RUNPATH is $ORIGIN-relative).
mount_here -t proc proc "$chroot_dir/proc"
mount_here --bind -o ro "$sysroot" "$chroot_dir$SYSROOT_MOUNT"
while IFS= read -r mirror; do
  [ -n "$mirror" ] || continue
  mkdir -p "$chroot_dir$mirror"
  mount_here --bind -o ro "$mirror" "$chroot_dir$mirror"
done < <(mirror_git_rules)

log "building $PRODUCT for $TRIPLE (release, static Swift stdlib) from $source_dir (log: $build_log)"
started=$SECONDS
if ! run "$build_log" "${in_chroot[@]}" swift build --package-path "/build/$slot/src" --scratch-path "/build/$slot/scratch" \
      --destination "$SDK_DIR/swift-sdk.json" -c release --static-swift-stdlib --product "$PRODUCT"; then
  first=$(grep -m1 -E 'error:' "$build_log" || tail -1 "$build_log")
  die "swift build failed: ${first//\/build\/$slot\/src/$source_dir} (full log: $build_log)"
fi
built="/build/$slot/scratch/$TRIPLE/release/$PRODUCT"
"${in_chroot[@]}" aarch64-linux-gnu-strip -o "/build/$slot/$PRODUCT" "$built" </dev/null \
  || die "stripping $chroot_dir$built failed"
kind=$(file -b "$chroot_dir/build/$slot/$PRODUCT")
[[ "$kind" == *"ARM aarch64"* ]] || die "$chroot_dir/build/$slot/$PRODUCT is not an aarch64 binary: $kind"
cp "$chroot_dir/build/$slot/$PRODUCT" "$out.partial-$$"
mv "$out.partial-$$" "$out"
# Beside the binary: the shared libraries it needs from the sysroot, and the dynamic loader, for
# running it under user emulation (QEMU_LD_PREFIX=DIR/runtime), as ./build.sh test runs the agent's
# tests with it. Not the whole sysroot: qemu-user looks up every absolute path under the prefix
# first, so the sysroot's etc/resolv.conf, etc/hosts and etc/services would stand in for the host's.
runtime="$(dirname "$out")/runtime"
rm -rf "$runtime.partial-$$" && mkdir -p "$runtime.partial-$$/lib/aarch64-linux-gnu"
cp -L "$sysroot/lib/ld-linux-aarch64.so.1" "$runtime.partial-$$/lib/"
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v '^ld-linux' || true; }
# libzstd.so.1 is not NEEDED: the agent loads it when it installs an update (dlopen).
pending=($(needed "$out") libzstd.so.1)
while [ ${#pending[@]} -gt 0 ]; do  # the libraries' own, too (libcrypto needs libz)
  library=${pending[0]}; pending=("${pending[@]:1}")
  [ -e "$runtime.partial-$$/lib/aarch64-linux-gnu/$library" ] && continue
  found=$(ls "$sysroot/usr/lib/aarch64-linux-gnu/$library" "$sysroot/lib/aarch64-linux-gnu/$library" 2>/dev/null | head -1)
  [ -n "$found" ] || die "$out needs $library, which the arm64 sysroot does not have"
  cp -L "$found" "$runtime.partial-$$/lib/aarch64-linux-gnu/"
  pending+=($(needed "$found"))
done
rm -rf "$runtime" && mv "$runtime.partial-$$" "$runtime"
log "built in $((SECONDS - started)) s: $out, $(stat -c %s "$out") bytes, stripped; run it with QEMU_LD_PREFIX=$runtime qemu-aarch64-static $out"
echo "$out"
