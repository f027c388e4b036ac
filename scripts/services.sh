#!/usr/bin/env bash
# Start (or reuse) a private PostgreSQL and Redis for tests and benchmarks, from Debian's packages.
# Installs them with apt-get when missing and we are root. Prints the env lines to export.
#   source <(bash scripts/services.sh start)      # SIYU_TEST_PG_URL=... SIYU_TEST_REDIS_URL=...
#   bash scripts/services.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# Outside the checkout: the postgres user must be able to reach it wherever the checkout lives.
RUN_DIR=${SIYU_SERVICES_DIR:-${TMPDIR:-/tmp}/siyu-services-$(id -u)}
PG_PORT=${SIYU_PG_PORT:-55432}
REDIS_PORT=${SIYU_REDIS_PORT:-56379}
mkdir -p "$RUN_DIR"

log() { echo "services: $*" >&2; }

apt_install() {
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    log "cannot install $* (not root or no apt-get)"; return 1
  fi
  if [ ! -f "$RUN_DIR/.apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && touch "$RUN_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

start_pg() {
  if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
    apt_install postgresql || return 1
  fi
  local bin; bin=$(pg_bin)
  local data="$RUN_DIR/pg"
  if "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U siyu -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
    log "reusing the PostgreSQL already listening on port $PG_PORT"
    echo "export SIYU_TEST_PG_URL=postgres://siyu@127.0.0.1:$PG_PORT/siyu"
    return 0
  fi
  local owner=""
  if [ "$(id -u)" = "0" ]; then owner=postgres; fi
  run_as() { if [ -n "$owner" ]; then su "$owner" -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"; [ -n "$owner" ] && chown -R "$owner" "$data"
    run_as "'$bin/initdb' -D '$data' -U siyu --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$data'
max_connections = 700
shared_buffers = 512MB
fsync = on
synchronous_commit = on
CONF
  fi
  if ! run_as "'$bin/pg_ctl' -D '$data' status" >/dev/null 2>&1; then
    run_as "'$bin/pg_ctl' -D '$data' -l '$data/server.log' -w -t 60 start" >/dev/null
  fi
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U siyu -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='siyu'" \
    | grep -q 1 || "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U siyu siyu
  echo "export SIYU_TEST_PG_URL=postgres://siyu@127.0.0.1:$PG_PORT/siyu"
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server || return 1
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" >/dev/null
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export SIYU_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then apt_install chromium fonts-wqy-microhei || return 1; fi
  if ! fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then apt_install fonts-wqy-microhei || true; fi
  echo "export SIYU_CHROMIUM=/usr/bin/chromium"
}

stop_all() {
  local bin; bin=$(pg_bin)
  if [ -f "$RUN_DIR/pg/PG_VERSION" ] && [ -n "$bin" ]; then
    if [ "$(id -u)" = "0" ]; then su postgres -s /bin/bash -c "'$bin/pg_ctl' -D '$RUN_DIR/pg' -m fast stop" >/dev/null 2>&1 || true
    else "$bin/pg_ctl" -D "$RUN_DIR/pg" -m fast stop >/dev/null 2>&1 || true; fi
  fi
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start)
    start_pg || log "PostgreSQL unavailable"
    start_redis || log "Redis unavailable"
    ensure_chromium || log "Chromium unavailable"
    ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
