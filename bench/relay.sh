#!/usr/bin/env bash
# Relay benchmark (needs root: network namespaces, wireguard-go). Release relay binary, and the
# clients (the test process's load generator) built with optimisation too, in .build-bench, so the
# stand-in for N routers on other machines does not take the relay's CPU (a debug generator used
# 0.8 of the 2 cores).
#   bench/relay.sh      registrations/s (32 router threads) and the time from a master claim to `wg`
#                       routing the site /64 to the new router.
#   bench/relay.sh N    the fleet: N distinct routers register at once from cold (a load generator, not
#                       one client per router), relay RSS/CPU per peer, master takeover, `status`,
#                       restart and restore with N peers, the N routers again after the restart.
# Prints each measured figure next to its target.
set -euo pipefail
cd "$(dirname "$0")/.."
routers="${1:-}"
build=(-c release --scratch-path .build-bench -Xswiftc -enable-testing)
swift build "${build[@]}" --build-tests >&2
bin="$(swift build "${build[@]}" --show-bin-path)"
if [ -n "$routers" ]; then
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  EDGEKIT_BENCH=1 EDGEKIT_BENCH_ROUTERS="$routers" EDGEKIT_BIN_DIR="$bin" \
    swift test "${build[@]}" --skip-build --filter RelayBenchmark 2>&1 | grep -E "^fleet:|✘|error"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
else
  EDGEKIT_BENCH=1 EDGEKIT_BIN_DIR="$bin" \
    swift test "${build[@]}" --skip-build --filter RelayBenchmark 2>&1 | grep -E "relay benchmark|registrations/s|master claim|✘|error"
fi
