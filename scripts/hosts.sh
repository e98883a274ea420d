#!/usr/bin/env bash
# Separate hosts on one machine, for scripts/test's fourth pass (docs/testing.md): every role of
# titok and the services on a host of its own — a Linux network namespace with its own addresses,
# linked to the others through a bridge that lives in a namespace of its own. Nothing is linked to
# the machine's root namespace, so a cut link can never fall back to the machine's default route
# (../shared/services.md); traffic stays between the namespaces made here. Needs root and
# Debian's iproute2.
#
#   source scripts/hosts.sh
#   hosts_up        # make the namespaces, the bridge and the links (removing leftovers first)
#   hosts_down      # remove them
#
# The hosts (namespace titok-<name>, address 10.77.0.N/24):
#   services  .2 MariaDB, .3 Redis, .4 the Kafka-API broker, .5 S3 (SeaweedFS): one address each,
#             so that a test can cut one service from one host (a route) and leave the rest
#   client    .10 the test process and the load balancer (haproxy)
#   command   .11 the command API      projector .13 the projectors
#   query     .12 and query2 .14: two query APIs (the balancer routes around one cut off)
# The test harness (tests/src, TITOK_TEST_TOPOLOGY=hosts) starts each role with
# `ip netns exec titok-<host>` and its own data dir.

HOSTS_NET=titok-net
HOSTS=(services client command query query2 projector)

host_ips() { # host_ips NAME: its addresses
  case $1 in
    services) echo 10.77.0.2 10.77.0.3 10.77.0.4 10.77.0.5 ;;
    client) echo 10.77.0.10 ;;
    command) echo 10.77.0.11 ;;
    query) echo 10.77.0.12 ;;
    query2) echo 10.77.0.14 ;;
    projector) echo 10.77.0.13 ;;
  esac
}

hosts_down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^titok-/ {print $1}'); do
    # Processes left in a namespace keep it alive: end them first.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
}

hosts_up() {
  hosts_down
  ip netns add "$HOSTS_NET"
  ip -n "$HOSTS_NET" link add br0 type bridge
  ip -n "$HOSTS_NET" link set br0 up
  ip -n "$HOSTS_NET" link set lo up
  local host ns ip
  for host in "${HOSTS[@]}"; do
    ns="titok-$host"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # The pair is made inside the bridge's namespace and one end moved: it never exists in the
    # root namespace.
    ip -n "$HOSTS_NET" link add "v-$host" type veth peer name eth0 netns "$ns"
    ip -n "$HOSTS_NET" link set "v-$host" master br0 up
    for ip in $(host_ips "$host"); do
      ip -n "$ns" addr add "$ip/24" dev eth0
    done
    ip -n "$ns" link set eth0 up
  done
  # Wait until the bridge forwards (its ports pass through the listening state only with STP on,
  # which is off by default; the links still take a moment to come up).
  # (A refused connection to a closed port means the services host answered.)
  local _ answer
  for _ in $(seq 50); do
    answer=$(ip netns exec titok-client timeout 1 bash -c 'exec 3<>/dev/tcp/10.77.0.2/9' 2>&1 || true)
    case $answer in *refused*) return 0 ;; esac
    sleep 0.1
  done
  echo "hosts: the client host cannot reach the services host" >&2
  return 1
}
