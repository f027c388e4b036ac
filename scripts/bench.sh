#!/usr/bin/env bash
# Run every benchmark under bench/ against the private PostgreSQL (started by scripts/services.sh).
# Each benchmark prints its own ratio against a baseline measured in the same run; see bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source <(bash scripts/services.sh start)
export SIYU_DATA_DIR=${SIYU_DATA_DIR:-$(pwd)/var/bench}
mkdir -p "$SIYU_DATA_DIR"
for bench in bench/bench_*.py; do
  echo "==> $bench"
  .venv/bin/python "$bench" "$@"
done
