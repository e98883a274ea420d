#!/usr/bin/env bash
# Private MariaDB, Redis and Kafka-API (tansu) instances on loopback for the real-service tests,
# and the browser test's Chromium and playwright-core.
#
#   source scripts/services.sh
#   services_install          # apt-get / cargo install what is missing
#   services_start            # start all three in a temp dir; exports TITOK_TEST_* variables
#   services_stop             # stop them and remove the temp dir (callers trap it on EXIT)
#
# Nothing touches system instances: every server runs from $SERVICES_DIR on its own port.

services_install() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "== installing playwright-core for the browser test (npm)"
    npm install --prefix tests/browser --no-audit --no-fund --silent
  fi
  if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    echo "== installing the tansu Kafka-API broker (cargo install, ~12 minutes on 2 cores)"
    cargo install tansu --features libsql --locked
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}

services_start() {
  SERVICES_DIR=$(mktemp -d /tmp/titok-services.XXXXXX)
  export SERVICES_DIR
  local tansu_bin
  tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")

  MYSQL_PORT=$(free_port)
  mkdir -p "$SERVICES_DIR/mysql"
  mariadb-install-db --no-defaults --datadir="$SERVICES_DIR/mysql" --auth-root-authentication-method=normal \
    --skip-test-db >"$SERVICES_DIR/mysql-install.log" 2>&1
  mariadbd --no-defaults --datadir="$SERVICES_DIR/mysql" --socket="$SERVICES_DIR/mysql.sock" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --user=root --skip-log-bin \
    --innodb-flush-log-at-trx-commit=2 --max-connections=2000 >"$SERVICES_DIR/mysql.log" 2>&1 &
  echo $! >"$SERVICES_DIR/mysql.pid"
  wait_for 30 MariaDB mariadb-admin --socket="$SERVICES_DIR/mysql.sock" ping
  mariadb --socket="$SERVICES_DIR/mysql.sock" -e \
    "CREATE USER 'titok'@'127.0.0.1' IDENTIFIED BY 'titok'; GRANT ALL ON *.* TO 'titok'@'127.0.0.1';"

  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$SERVICES_DIR" --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log"
  wait_for 10 Redis redis-cli -p "$REDIS_PORT" ping

  KAFKA_PORT=$(free_port)
  (cd "$SERVICES_DIR" && exec "$tansu_bin" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine "sqlite://tansu.db" \
    >"$SERVICES_DIR/tansu.log" 2>&1) &
  echo $! >"$SERVICES_DIR/tansu.pid"
  wait_for 30 tansu bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"

  export TITOK_TEST_MYSQL_URL="mysql://titok:titok@127.0.0.1:$MYSQL_PORT"
  export TITOK_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export TITOK_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
  export TITOK_TEST_SERVICES_DIR="$SERVICES_DIR"
  echo "== services: MariaDB :$MYSQL_PORT, Redis :$REDIS_PORT, tansu :$KAFKA_PORT (in $SERVICES_DIR)"
}

services_stop() {
  [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || return 0
  for pidfile in "$SERVICES_DIR"/*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 0.5
  for pidfile in "$SERVICES_DIR"/*.pid; do
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$SERVICES_DIR"
  SERVICES_DIR=
}
