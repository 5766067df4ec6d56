#!/bin/sh
# Times rendering the whole example plan (every router and the relay) in a release build.
# Usage: bench/render.sh [ITERATIONS]   (prints: render whole example plan: X.XX ms (target < 20 ms))
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift build -c release --product edgekit-bench-render >&2
exec "$(swift build -c release --show-bin-path)/edgekit-bench-render" profiles/example "${1:-500}"
