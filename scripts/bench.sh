#!/usr/bin/env bash
# Benchmarks against the private PostgreSQL (started by scripts/services.sh). Each prints its own ratio
# against a baseline measured in the same run; results and the exact commands are in bench/RESULTS.md.
#   ./run bench                      every bench/bench_*.py with its defaults (long: 1M-customer runs)
#   ./run bench ingest --events 20000   one benchmark (bench/bench_ingest.py) with its own options
set -euo pipefail
cd "$(dirname "$0")/.."
source <(bash scripts/services.sh start)
export SIYU_DATA_DIR=${SIYU_DATA_DIR:-$(pwd)/var/bench}
mkdir -p "$SIYU_DATA_DIR"
if [ $# -gt 0 ] && [ -f "bench/bench_$1.py" ]; then
  name=$1; shift
  exec .venv/bin/python "bench/bench_$name.py" "$@"
fi
for bench in bench/bench_*.py; do
  echo "==> $bench"
  .venv/bin/python "$bench" "$@"
done
