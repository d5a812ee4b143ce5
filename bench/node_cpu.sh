#!/usr/bin/env bash
# What each node of a 3-node cluster spends per request (issue #12 item 7,
# docs/BENCHMARKS.md "Query fan-out"): `mailbox bench` through node 1 (the
# leader) and then through node 2 (a follower, which hands every request to
# the leader over the Raft transport), with each node's CPU seconds (user +
# system, from /proc) over the measured window divided by the requests
# served (puts + consumes).
#
#   bench/node_cpu.sh [BUILD_DIR] [SECONDS] [PRODUCERS]     e.g. bench/node_cpu.sh build 10 16
# SECURE=1 runs the nodes in secure mode (a test PKI, TLS clients with a
# token, mutual TLS between nodes).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$here/build}")
seconds=${2:-10}
clients=${3:-16}
work=$(mktemp -d /tmp/mailbox-node-cpu.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)
scheme=tcp client=()
if [[ ${SECURE:-0} == 1 ]]; then
  scheme=tls
  MAILBOX_BIN="$build/mailbox" "$here/scripts/make-test-pki.sh" "$work/pki" --nodes 3 --cluster bench \
    --clients bencher >/dev/null
  token=$("$build/mailbox" token create --key "$work/pki/signing/k1.key" --cluster bench --sub bencher \
    --mailboxes '*' --ops put,consume,stats,admin --ttl 1h)
  client=(--tls-ca "$work/pki/ca.pem" --tls-cert "$work/pki/clients/bencher.pem"
          --tls-key "$work/pki/clients/bencher.key" --token "$token")
fi
peers=() pids=()
for i in 1 2 3; do peers+=(--peer "$i=127.0.0.1:$((17649 + i))"); done
for i in 1 2 3; do
  secure=()
  [[ $scheme == tls ]] && secure=(--secure-dir "$work/pki/node$i")
  "$build/mailboxd" --node-id "$i" --listen "$scheme/127.0.0.1:$((17646 + i))" --raft-address "127.0.0.1:$((17649 + i))" \
    --data-dir "$work/n$i" "${peers[@]}" "${secure[@]}" >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
cli() { "$build/mailbox" --connect "$scheme/127.0.0.1:$((17646 + $1))" "${client[@]}" "${@:2}"; }
for _ in $(seq 1 100); do cli 1 stats bench >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 1 100); do
  cli 1 cluster transfer 1 >/dev/null 2>&1 &&
    cli 1 cluster status 2>/dev/null | awk '$1 == 1 && $2 == "leader" {found = 1} END {exit !found}' && break
  sleep 0.2
done
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for via in 1 2; do
  before=(); for p in "${pids[@]}"; do before+=("$(cpu "$p")"); done
  out=$(cli "$via" --json bench --producers "$clients" --consumers "$clients" --duration "${seconds}s" --warmup 0s)
  after=(); for p in "${pids[@]}"; do after+=("$(cpu "$p")"); done
  python3 - "$via" "$ticks" "$out" "${before[@]}" "${after[@]}" <<'PY'
import json, os, sys
via, ticks, out = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
before, after = sys.argv[4:7], sys.argv[7:10]
requests = (out["puts_per_second"] + out["messages_consumed_per_second"]) * out["duration_s"]
cpu_s = [(int(a) - int(b)) / ticks for a, b in zip(after, before)]
print(json.dumps({"secure": os.environ.get("SECURE") == "1", "clients_on_node": via, "leader": 1, "puts_per_second": out["puts_per_second"],
                  "cpu_seconds": cpu_s, "cpu_us_per_request": [round(c * 1e6 / requests, 1) for c in cpu_s]}))
PY
done
