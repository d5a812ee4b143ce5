#!/usr/bin/env bash
# Prepares a secure-mode playground once (make run-secure, make
# cluster-secure): a test CA and node directories (scripts/make-test-pki.sh),
# and OUT/client.env with the settings and tokens of the client alice:
#
#   source OUT/client.env && build/mailbox put alice hello
#
#   scripts/secure-setup.sh OUT NODES
# Environment: BUILD_DIR (build), CLUSTER_NAME (mailbox-demo), SECURE_SCHEME
# (tls or quic: the endpoint written into client.env).
set -euo pipefail
out=$1
nodes=$2
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-build}
cluster=${CLUSTER_NAME:-mailbox-demo}
pki="$out/pki"
if [[ ! -f $pki/ca.pem ]]; then
  MAILBOX_BIN="$build/mailbox" "$here/scripts/make-test-pki.sh" "$pki" --nodes "$nodes" --cluster "$cluster" \
    --clients alice,bob,operator
fi
have=$(ls -d "$pki"/node* | wc -l)
if ((have < nodes)); then
  echo "secure-setup: $pki has $have node directories, $nodes needed: remove $out to start over" >&2
  exit 1
fi
mint() { "$build/mailbox" token create --key "$pki/signing/k1.key" --cluster "$cluster" --ttl 30d "$@"; }
umask 077
{
  echo "# Settings of the client alice for the secure playground (made by scripts/secure-setup.sh)."
  echo "export MAILBOX_CONNECT='${SECURE_SCHEME:-tls}/127.0.0.1:7447'"
  echo "export MAILBOX_TLS_CA='$(realpath "$pki/ca.pem")'"
  echo "export MAILBOX_TLS_CERT='$(realpath "$pki/clients/alice.pem")'"
  echo "export MAILBOX_TLS_KEY='$(realpath "$pki/clients/alice.key")'"
  echo "# alice may put, consume, peek, stats and ack on alice and team-*"
  echo "export MAILBOX_TOKEN='$(mint --sub alice --mailboxes 'alice,team-*' --ops put,consume,peek,stats,ack)'"
  echo "# an operator's token for mailbox cluster add/remove/transfer: MAILBOX_TOKEN=\$ADMIN_TOKEN"
  echo "export ADMIN_TOKEN='$(mint --sub operator --mailboxes '*' --ops admin,stats,list)'"
} >"$out/client.env"
echo "secure-setup: cluster '$cluster' in $out; for a client:  source $out/client.env"
