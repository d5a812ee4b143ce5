#!/usr/bin/env bash
# What secure mode costs (docs/BENCHMARKS.md, "Secure mode"): the same
# `mailbox bench` against open and secure nodes, 1 node and 3 nodes, one
# configuration at a time. In secure mode the client speaks TLS with a
# certificate and a token; on 3 nodes the Raft transport is mutual TLS too,
# so (3-node cost) - (1-node cost) is about what the Raft link's TLS costs.
#
#   bench/secure_cost.sh [BUILD_DIR] [DURATION]     e.g. bench/secure_cost.sh build 10s
# Prints one JSON line per run (configuration, producers+consumers, result).
# Clients reach node 1, made the leader first on 3 nodes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$here/build}")
duration=${2:-10s}
work=$(mktemp -d /tmp/mailbox-secure-cost.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
MAILBOX_BIN="$build/mailbox" "$here/scripts/make-test-pki.sh" "$work/pki" --nodes 3 --cluster bench --clients bencher >/dev/null
token=$("$build/mailbox" token create --key "$work/pki/signing/k1.key" --cluster bench --sub bencher \
  --mailboxes '*' --ops put,consume,stats,admin --ttl 1h)

run() {  # run MODE NODES
  local mode=$1 nodes=$2 scheme=tcp client=()
  local data="$work/$mode-$nodes"
  local peers=() pids=()
  for i in $(seq 1 "$nodes"); do peers+=(--peer "$i=127.0.0.1:$((17549 + i))"); done
  if [[ $mode == secure ]]; then
    scheme=tls
    client=(--tls-ca "$work/pki/ca.pem" --tls-cert "$work/pki/clients/bencher.pem"
            --tls-key "$work/pki/clients/bencher.key" --token "$token")
  fi
  for i in $(seq 1 "$nodes"); do
    local secure=()
    [[ $mode == secure ]] && secure=(--secure-dir "$work/pki/node$i")
    mkdir -p "$data"
    "$build/mailboxd" --node-id "$i" --listen "$scheme/127.0.0.1:$((17546 + i))" \
      --raft-address "127.0.0.1:$((17549 + i))" --data-dir "$data/n$i" "${peers[@]}" "${secure[@]}" \
      >"$data/n$i.log" 2>&1 &
    pids+=($!)
  done
  # Clients talk to node 1 (a follower forwards to the leader).
  local cli=("$build/mailbox" --connect "$scheme/127.0.0.1:17547" "${client[@]}")
  for _ in $(seq 1 100); do "${cli[@]}" stats bench >/dev/null 2>&1 && break; sleep 0.2; done
  # Node 1, the one the clients reach, leads: no forwarding hop.
  if ((nodes > 1)); then
    for _ in $(seq 1 100); do
      "${cli[@]}" cluster transfer 1 >/dev/null 2>&1 &&
        "${cli[@]}" cluster status 2>/dev/null | awk '$1 == 1 && $2 == "leader" {found = 1} END {exit !found}' && break
      sleep 0.2
    done
  fi
  for pc in "1 1" "16 16"; do
    set -- $pc
    local out
    out=$("${cli[@]}" --json bench --producers "$1" --consumers "$2" --duration "$duration" --warmup 2s)
    echo "{\"mode\":\"$mode\",\"nodes\":$nodes,\"clients\":\"$1+$2\",\"result\":$out}"
  done
  kill -TERM "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
}

for nodes in 1 3; do
  run open "$nodes"
  run secure "$nodes"
done
