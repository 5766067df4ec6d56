#!/usr/bin/env bash
# Relay benchmark (needs root: network namespaces, wireguard-go): registrations/s and the time from a
# master claim to `wg` routing the site /64 to the new router. Release relay binary, debug clients.
# Prints each measured figure next to its target.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product edgekit-relay >&2
swift build --build-tests >&2
EDGEKIT_BENCH=1 EDGEKIT_BIN_DIR="$(swift build -c release --show-bin-path)" \
  swift test --skip-build --filter RelayBenchmark 2>&1 | grep -E "relay benchmark|registrations/s|master claim|✘|error" 
