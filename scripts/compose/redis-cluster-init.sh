#!/bin/sh
# One-shot: make the six redis-cluster-N containers a Redis Cluster (3 masters + 3 replicas).
set -e
nodes=""
for i in 1 2 3 4 5 6; do
  until redis-cli -h "redis-cluster-$i" ping >/dev/null 2>&1; do sleep 1; done
  nodes="$nodes $(getent hosts "redis-cluster-$i" | awk '{print $1}'):6379"
done
if redis-cli -h redis-cluster-1 cluster info | grep -q cluster_state:ok; then exit 0; fi
# shellcheck disable=SC2086
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes
