#!/usr/bin/env bash
# Agent targets (issue 6): apply of the example router from stick to files in place, excluding
# service restarts, < 200 ms; a no-op re-apply < 50 ms; the appliance binary's size and the resident
# memory of `run` while supervising (reported). Measured on the binary the image carries: release,
# static Swift stdlib, stripped (build.sh appliance_agent). Other work on the machine skews timings:
# the load average is printed before and after.
# Usage: bench/agent.sh [RUNS]   (default 15; no-op re-applies: twice that)
set -euo pipefail
cd "$(dirname "$0")/.."
for product in edgekit-agent edgekit edgekit-bench; do
  swift build -c release --static-swift-stdlib --product "$product" 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
done
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"
mkdir -p .build/appliance
strip -o .build/appliance/edgekit-agent "$bin/edgekit-agent"
echo "load before: $(uptime)"
"$bin/edgekit-bench" agent "$PWD/.build/appliance/edgekit-agent" "$bin/edgekit" profiles/example "${1:-15}"
echo "load after: $(uptime)"
