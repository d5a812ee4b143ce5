#!/usr/bin/env bash
# Runs a 3-node mailbox cluster on loopback in the foreground; Ctrl-C (or
# SIGTERM) stops every node cleanly. Used by `make cluster`.
#
#   node 1: Zenoh tcp/127.0.0.1:7447, Raft 127.0.0.1:7450, data cluster-data/n1
#   node 2: Zenoh tcp/127.0.0.1:7448, Raft 127.0.0.1:7451, data cluster-data/n2
#   node 3: Zenoh tcp/127.0.0.1:7449, Raft 127.0.0.1:7452, data cluster-data/n3
#
# Environment: BUILD_DIR (build), DATA_DIR (cluster-data), NODES (3 or 5),
# SECURE_DIR (secure mode: node i runs with --secure-dir $SECURE_DIR/node<i>
# and TLS endpoints, or QUIC ones with SECURE_SCHEME=quic; `make
# cluster-secure` prepares it).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-cluster-data}
nodes=${NODES:-3}
scheme=tcp
[[ -n ${SECURE_DIR:-} ]] && scheme=${SECURE_SCHEME:-tls}

peers=()
for i in $(seq 1 "$nodes"); do peers+=(--peer "$i=127.0.0.1:$((7449 + i))"); done
pids=()
stop() {
  echo "cluster: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit 0
}
trap stop INT TERM
for i in $(seq 1 "$nodes"); do
  secure=()
  [[ -n ${SECURE_DIR:-} ]] && secure=(--secure-dir "$SECURE_DIR/node$i")
  mkdir -p "$data"
  "$build/mailboxd" --node-id "$i" --listen "$scheme/127.0.0.1:$((7446 + i))" --raft-address "127.0.0.1:$((7449 + i))" \
    --data-dir "$data/n$i" "${peers[@]}" "${secure[@]}" >"$data/n$i.log" 2>&1 &
  pids+=($!)
done
echo "cluster: $nodes nodes on $scheme/127.0.0.1:7447..$((7446 + nodes)); logs in $data/n*.log; Ctrl-C stops"
echo "cluster: try  $build/mailbox cluster status"
wait
