#!/usr/bin/env bash
# The whole test suite: once on SQLite, once on a real PostgreSQL (with Redis and Chromium for the
# tests that need them). Under CI=true a missing service is an error, not a skip.
set -uo pipefail
cd "$(dirname "$0")/.."
source <(bash scripts/services.sh start)
export SIYU_DATA_DIR=${SIYU_DATA_DIR:-$(pwd)/var/test}
mkdir -p "$SIYU_DATA_DIR"
# Tasks queued by the tests go to a queue of their own, never to a running demo's.
export SIYU_QUEUE_FILE="$SIYU_DATA_DIR/tasks-test.sqlite3"
rm -f "$SIYU_QUEUE_FILE"*
if [ "${CI:-}" = "true" ]; then
  export SIYU_REQUIRE_SERVICES=1
  for var in SIYU_TEST_PG_URL SIYU_TEST_REDIS_URL SIYU_CHROMIUM; do
    [ -n "${!var:-}" ] || { echo "CI: $var is not available" >&2; exit 1; }
  done
fi

status=0
echo "==> test suite on SQLite"
SIYU_DATABASE_URL="sqlite:///$SIYU_DATA_DIR/sqlite-test.db" .venv/bin/pytest -q -p no:cacheprovider "$@" || status=$?
if [ -n "${SIYU_TEST_PG_URL:-}" ]; then
  echo "==> test suite on PostgreSQL"
  SIYU_DATABASE_URL="$SIYU_TEST_PG_URL" .venv/bin/pytest -q -p no:cacheprovider "$@" || status=$?
else
  echo "==> PostgreSQL not available here: the PostgreSQL run was skipped" >&2
  [ "${CI:-}" = "true" ] && status=1
fi
exit $status
