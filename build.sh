#!/usr/bin/env bash
# edgekit's one entry point for people and CI (README.md, "Build").
#   ./build.sh          install missing Debian packages, build release binaries and the aarch64 agent
#                       (docs/cross-build.md), run the main job on the example plan (profiles/example)
#   ./build.sh test     install, build (the aarch64 agent too) and run the whole test suite, then the
#                       agent's tests again with the aarch64 agent under qemu; ends with a summary line
#   ./build.sh test quick   only the tests that take seconds (no images, labs or namespace daemons)
#   ./build.sh deps     only install the missing Debian packages
#   ./build.sh lab      build debug binaries and the appliance agent, run the lab (namespaces, then site B's
#                       image in qemu; lab/lab.sh, root); writes out/lab-report.md
#   ./build.sh help     this text
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

# Debian packages the project needs: to build (libarchive, zstd, libcrypto, pkg-config), and the real
# tools the features and the suite run (age, signify, WireGuard, radvd, keepalived, nftables, ...).
# The aarch64 agent (scripts/aarch64-agent.sh) needs mmdebstrap, rsync and file, and qemu-user-static
# with binfmt-support to run it; arm64 images need arch-test (mmdebstrap's check for foreign
# architectures) and qemu-user-static, and qemu-system-arm and qemu-efi-aarch64 boot them.
# `edgekit client config --qr/--png` runs qrencode; the tests read its codes back with zbarimg.
# The relay's NAT64 and DNS64 run tayga and unbound (the lab runs both; unbound-checkconf checks the drop-in).
PACKAGES=(
  pkg-config libarchive-dev libzstd-dev libssl-dev zstd libarchive-tools
  age signify-openbsd
  wireguard-tools wireguard-go iproute2 iputils-ping nftables radvd keepalived dnsmasq-base
  ndisc6 socat tcpdump procps util-linux busybox bc openssh-server openssh-client
  dosfstools mtools e2fsprogs fdisk bmap-tools grub-common
  mmdebstrap qemu-system-x86 ovmf
  rsync file binutils qemu-user-static binfmt-support arch-test qemu-system-arm qemu-efi-aarch64
  systemd udev python3-minimal
  prometheus prometheus-node-exporter
  qrencode zbar-tools tayga unbound
  python3-venv
)
# The SPDX project's validator (spdx-tools, from PyPI: Debian has none) checks the images' software
# bills of materials in the suite; it lives in a virtual environment under the cache.
SPDX_TOOLS_VERSION=0.8.5

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}; run ./build.sh as root, or: sudo apt-get install ${missing[*]}"
  fi
  log "installing ${#missing[@]} Debian package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed (is the Debian archive reachable?)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
}

# Installs spdx-tools (pinned) into CACHE/spdx-tools once and puts its pyspdxtools, alone, on PATH.
spdx_validator() {
  local venv="${EDGEKIT_CACHE:-$ROOT/cache}/spdx-tools"
  if [ ! -x "$venv/only/pyspdxtools" ] || [ "$(cat "$venv/version" 2>/dev/null)" != "$SPDX_TOOLS_VERSION" ]; then
    log "installing the SPDX validator (spdx-tools $SPDX_TOOLS_VERSION from PyPI) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/pip" install -q --disable-pip-version-check "spdx-tools==$SPDX_TOOLS_VERSION" >&2 \
      || die "pip install spdx-tools==$SPDX_TOOLS_VERSION failed (is PyPI reachable?)"
    mkdir -p "$venv/only" && ln -sf ../bin/pyspdxtools "$venv/only/pyspdxtools"
    echo "$SPDX_TOOLS_VERSION" > "$venv/version"
  fi
  # Only the validator: the environment's python3 must not shadow Debian's for the other tests.
  export PATH="$venv/only:$PATH"
}

find_swift() {
  if ! command -v swift >/dev/null 2>&1; then
    [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
  fi
  command -v swift >/dev/null 2>&1 || die "Swift 6 toolchain not found (expected on PATH or in /opt/swift)"
}

# The appliance runs edgekit-agent without a Swift runtime: build it with the static stdlib and
# strip it. Prints the path of the binary to put into images.
appliance_agent() {
  swift build -c release --static-swift-stdlib --product edgekit-agent 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 \
    || die "release build of edgekit-agent failed"
  mkdir -p .build/appliance
  strip -o .build/appliance/edgekit-agent "$(swift build -c release --show-bin-path)/edgekit-agent"
  echo "$ROOT/.build/appliance/edgekit-agent"
}

# The agent for aarch64 boards, cross-built with Debian 13's swiftlang 6.0.3 in a chroot whose
# toolchain is cached under the project's cache folder (docs/cross-build.md). Prints the path of
# the stripped binary; `runtime/` beside it holds the arm64 libraries it runs with under qemu.
arm64_agent() {
  log "cross-building the agent for aarch64 (docs/cross-build.md)"
  scripts/aarch64-agent.sh --cache "${EDGEKIT_CACHE:-$ROOT/cache}" --out "$ROOT/.build/appliance-arm64/edgekit-agent" "$ROOT" \
    || die "cross build of edgekit-agent for aarch64 failed (its line above names the log)"
}

# Lets the kernel run aarch64 binaries through qemu-aarch64 (qemu-user-static, binfmt-support), so
# the agent's tests can start the aarch64 agent as they start the host's, and mmdebstrap can run the
# package scripts of an arm64 base.
enable_aarch64_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
      || die "cannot mount binfmt_misc (needed to run the aarch64 agent's tests under qemu-aarch64)"
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 || die "update-binfmts --enable qemu-aarch64 failed"
  fi
}

# For the suite and the lab: the aarch64 agent in EDGEKIT_ARM64_AGENT_BINARY (arm64 images and the
# agent's second test pass take it from there) and qemu-aarch64 enabled to run it.
export_arm64_agent() {
  export EDGEKIT_ARM64_AGENT_BINARY
  EDGEKIT_ARM64_AGENT_BINARY="$(arm64_agent)"
  enable_aarch64_binfmt
}

main_job() {
  log "building release binaries (static Swift stdlib)"
  # Product by product: a plain `swift build` would also build TestSupport, which imports Testing
  # and cannot build outside `swift build --build-tests`.
  local product
  for product in edgekit edgekit-relay; do
    swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 \
      || die "release build of $product failed"
  done
  local bin agent arm64 secrets
  bin="$(swift build -c release --show-bin-path)"
  agent="$(appliance_agent)"
  arm64="$(arm64_agent)"
  log "checking the example plan"
  "$bin/edgekit" plan check profiles/example
  "$bin/edgekit" plan show profiles/example
  secrets="${EDGEKIT_SECRETS:-}"
  if [ -z "$secrets" ]; then
    secrets="$ROOT/out/throwaway-secrets"
    if [ ! -f "$secrets/master.key" ]; then
      log "no EDGEKIT_SECRETS given: creating throw-away secrets in $secrets (never use them for real sites)"
      "$bin/edgekit" keys init --plan profiles/example --secrets "$secrets"
    fi
  fi
  log "building every image, stick and the relay bundle of the example plan into out/"
  "$bin/edgekit" build --plan profiles/example --secrets "$secrets" --out "$ROOT/out" \
    --cache "${EDGEKIT_CACHE:-$ROOT/cache}" --agent "$agent" --agent-arm64 "$arm64"
  log "done: $(cd out && ls *.img *.tar.zst SHA256SUMS | tr '\n' ' ')"
}

# Counts the Swift Testing xunit report: "N passed, N failed, N skipped" (python3 reads the XML).
count_results() {
  python3 - "$1" <<'PY'
import re, sys, xml.etree.ElementTree as ET
# A failure message may quote a console with escape sequences, which the runner writes into the XML
# as they are (not well-formed): they are replaced before parsing.
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]|&#(x0*(?:[0-8bcefBCEF]|1[0-9a-fA-F])|0*(?:[0-8]|1[1-2]|1[4-9]|2[0-9]|3[01]));", "?", text)
passed = failed = skipped = 0
for case in ET.fromstring(text).iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is not None:
        skipped += 1
    else:
        passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
}

# `./build.sh test [quick]`: the whole suite, or (quick) what runs in seconds: EDGEKIT_QUICK=1 makes
# the tests marked .slow skip with that reason, and no release build is made for them.
# The suite's image cache keeps a system level (about 1 GB) per board for every agent binary and
# overlay it has seen; unpruned, a busy machine filled its disk with them (47 GB in one day, and a
# run failed with "No space left on device"). Before a run, keep the 12 most recent (every board's
# current ones and a few more); the Debian bases, which take minutes to build, are kept.
prune_test_cache() {
  local cache="${EDGEKIT_TEST_CACHE:-/var/tmp/edgekit-test-cache}" old
  [ -d "$cache" ] || return 0
  old=$(cd "$cache" && ls -dt system-*/ 2>/dev/null | tail -n +13)
  [ -n "$old" ] || return 0
  log "pruning $(echo "$old" | wc -l) old system levels from $cache (keeping the 12 most recent)"
  (cd "$cache" && for level in $old; do rm -rf "$level" "${level%/}.lock"; done)
}

run_tests() {
  local mode="${1:-all}" started log_file report
  started=$(date +%s)
  prune_test_cache
  spdx_validator
  if [ "$mode" = quick ]; then
    export EDGEKIT_QUICK=1
  else
    log "building the appliance agent and the image builder (release, static Swift stdlib)"
    export EDGEKIT_AGENT_BINARY EDGEKIT_RELEASE_BIN_DIR
    EDGEKIT_AGENT_BINARY="$(appliance_agent)"
    swift build -c release --static-swift-stdlib --product edgekit 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 \
      || die "release build of edgekit failed"
    EDGEKIT_RELEASE_BIN_DIR="$(swift build -c release --show-bin-path)"
    export_arm64_agent
  fi
  # The image tests share one cached base: a Debian publication during the run must not rebuild it
  # half-way (ImageBuildTests.aNewerArchiveBuildsTheCachedBaseAnew turns the check on for itself).
  export EDGEKIT_ARCHIVE_CHECK=off
  log "building the test suite"
  swift build --build-tests 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || die "test build failed"
  log_file="$(mktemp /tmp/edgekit-test.XXXXXX.log)"
  report="${log_file%.log}.xml"
  log "running the test suite (full log: $log_file)"
  set +e
  swift test --skip-build --xunit-output "$report" 2>&1 | tee "$log_file"
  local status=${PIPESTATUS[0]}
  set -e
  local counts arm64_counts=""
  counts="$(suite_counts "$report" "$status")"
  if [ "$mode" != quick ]; then
    # The agent's tests again, with the aarch64 agent in place of the host's (under qemu-aarch64):
    # the same binaries but edgekit-agent, through EDGEKIT_BIN_DIR. Skipped there: the power-cut
    # tests, whose crash points only debug builds have (the cross-built agent is a release build).
    local arm64_bin=.build/appliance-arm64/test-bin arm64_report="${log_file%.log}-aarch64.xml" arm64_status
    rm -rf "$arm64_bin" && mkdir -p "$arm64_bin"
    ln -s "$(swift build --show-bin-path)/edgekit" "$(swift build --show-bin-path)/edgekit-relay" "$arm64_bin/"
    cp .build/appliance-arm64/edgekit-agent "$arm64_bin/"
    log "running the agent's tests with the aarch64 agent under qemu-aarch64 (full log: ${log_file%.log}-aarch64.log)"
    set +e
    EDGEKIT_BIN_DIR="$ROOT/$arm64_bin" QEMU_LD_PREFIX="$ROOT/.build/appliance-arm64/runtime" \
      swift test --skip-build --filter EdgeAgentTests --skip 'CrashConsistencyTests|crashDuringRepair' \
      --xunit-output "$arm64_report" > "${log_file%.log}-aarch64.log" 2>&1
    arm64_status=$?
    set -e
    arm64_counts="$(suite_counts "$arm64_report" "$arm64_status")"
    log "aarch64 agent: $arm64_counts"
    [ "$arm64_status" -eq 0 ] || { status=$arm64_status; grep -E '^✘ Test [^r]' "${log_file%.log}-aarch64.log" | head -20 >&2 || true; }
  fi
  log "test suite took $(( $(date +%s) - started ))s"
  echo "summary: $counts${arm64_counts:+; aarch64 agent: $arm64_counts}"
  return "$status"
}

# "N passed, N failed, N skipped" from a run's xunit report (Swift Testing writes its own next to the
# one named, XCTest's having no tests here); a run that failed with nothing failed counts one failure.
suite_counts() {
  local report="$1" status="$2" counts
  if [ -f "${report%.xml}-swift-testing.xml" ]; then
    counts="$(count_results "${report%.xml}-swift-testing.xml")"
  else
    counts="0 passed, 1 failed, 0 skipped"
    log "no xunit report at ${report%.xml}-swift-testing.xml: the test runner did not finish"
  fi
  if [ "$status" -ne 0 ] && [[ "$counts" == *" 0 failed"* ]]; then counts="${counts/ 0 failed/ 1 failed}"; fi
  echo "$counts"
}

case "${1:-}" in
  "")
    install_packages; enable_aarch64_binfmt; find_swift; main_job ;;
  test)
    case "${2:-}" in
      "") install_packages; find_swift; run_tests all ;;
      quick) install_packages; find_swift; run_tests quick ;;
      *) die "unknown test mode \"$2\"; use ./build.sh test or ./build.sh test quick" ;;
    esac ;;
  deps)
    install_packages; enable_aarch64_binfmt ;;
  lab)
    install_packages; find_swift
    log "building debug binaries for the lab"
    swift build 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || die "debug build failed"
    EDGEKIT_AGENT_BINARY="$(appliance_agent)"
    swift build -c release --static-swift-stdlib --product edgekit 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || die "release build of edgekit failed"
    # LAB_QEMU_BOARD=arm64-uefi boots site B's arm64 image: the aarch64 agent goes into it.
    if [ "${LAB_QEMU_BOARD:-pc-uefi}" = arm64-uefi ]; then
      export_arm64_agent
    fi
    EDGEKIT_AGENT_BINARY="$EDGEKIT_AGENT_BINARY" EDGEKIT_RELEASE_BIN_DIR="$(swift build -c release --show-bin-path)" \
      EDGEKIT_BIN_DIR="$(swift build --show-bin-path)" LAB_REPORT="$ROOT/out/lab-report.md" lab/lab.sh ;;
  help|-h|--help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    die "unknown command \"$1\"; use ./build.sh, ./build.sh test, ./build.sh lab, ./build.sh deps or ./build.sh help" ;;
esac
