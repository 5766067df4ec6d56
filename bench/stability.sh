#!/usr/bin/env bash
# A healthy VRRP pair under traffic for SECONDS (default 600): no VIP moves, no health changes
# (issue 17: "a healthy pair under 10 min of normal traffic: 0 VIP moves"). Runs the lab's namespace
# scenarios (lab/lab.sh, no qemu) with LAB_STABILITY_SECONDS; needs root and the debug build.
# Prints the figure next to its target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
swift build >&2
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
LAB_QEMU=0 LAB_STABILITY_SECONDS="$seconds" LAB_REPORT="${TMPDIR:-/tmp}/edgekit-stability-report.md" lab/lab.sh 2>&1 \
  | grep -E "figure: stability|FAIL|PASS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
