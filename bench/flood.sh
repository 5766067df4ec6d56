#!/usr/bin/env bash
# Relay flood benchmark (needs root: network namespaces, raw sockets, wireguard-go): 50,000 spoofed
# HELLOs/s from 65,536 IPv4 sources (Tests/EdgeRelayTests/Flood.swift, a raw-socket sender inside the
# lab's namespaces; nothing leaves them) against the release relay with its shipped rate limits, and
# meanwhile real routers register. Prints registration latency under flood, relay CPU and RSS, each
# beside its target. EDGEKIT_FLOOD_RATE=N changes the flood's rate.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product edgekit-relay >&2
swift build --build-tests >&2
EDGEKIT_BENCH=1 EDGEKIT_BIN_DIR="$(swift build -c release --show-bin-path)" \
  swift test --skip-build --filter FloodBenchmark 2>&1 \
  | grep -E "flood benchmark|spoofed HELLOs|registration|relay CPU|relay RSS|✘|error"
