#!/usr/bin/env bash
# Relay benchmark (needs root: network namespaces, wireguard-go). Release relay binary, debug clients.
#   bench/relay.sh      registrations/s (32 router threads) and the time from a master claim to `wg`
#                       routing the site /64 to the new router.
#   bench/relay.sh N    the fleet: N distinct routers register at once from cold (a load generator, not
#                       one client per router), relay RSS/CPU per peer, master takeover, `status`,
#                       restart and restore with N peers, the N routers again after the restart.
# Prints each measured figure next to its target.
set -euo pipefail
cd "$(dirname "$0")/.."
routers="${1:-}"
swift build -c release --product edgekit-relay >&2
swift build --build-tests >&2
if [ -n "$routers" ]; then
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  EDGEKIT_BENCH=1 EDGEKIT_BENCH_ROUTERS="$routers" EDGEKIT_BIN_DIR="$(swift build -c release --show-bin-path)" \
    swift test --skip-build --filter RelayBenchmark 2>&1 | grep -E "^fleet:|✘|error"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
else
  EDGEKIT_BENCH=1 EDGEKIT_BIN_DIR="$(swift build -c release --show-bin-path)" \
    swift test --skip-build --filter RelayBenchmark 2>&1 | grep -E "relay benchmark|registrations/s|master claim|✘|error"
fi
