#!/usr/bin/env bash
# Profile targets (issue "Keys, sealed profiles…"): unseal+verify+check < 5 ms; sealing every router
# of a 100-site plan < 2 s. Release build; prints each measured figure next to its target.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product edgekit-bench >&2
"$(swift build -c release --show-bin-path)/edgekit-bench" profile profiles/example
