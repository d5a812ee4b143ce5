#!/usr/bin/env bash
# Makes everything secure mode needs, for tests and demos (docs/SECURITY.md):
# a test CA, one secure directory per node (certificate, key, token keys,
# secure.toml, and with --auth password the user dictionary), client
# certificates and passwords, and a token signing key.
#
#   scripts/make-test-pki.sh OUT [--nodes N] [--cluster NAME] [--auth certificate|password]
#                                [--clients alice,bob] [--hosts DNS:example.org,IP:10.0.0.1]
#
# Writes:
#   OUT/ca.pem, OUT/ca.key                 the test CA (keep ca.key away from nodes)
#   OUT/node<i>/                           mailboxd --secure-dir OUT/node<i> --node-id <i>
#   OUT/clients/<name>.pem, <name>.key     client certificates (CN = name)
#   OUT/clients/<name>.password            with --auth password
#   OUT/signing/k1.key, k1.pub             the token signing key (`mailbox token create --key`)
#
# Certificates are ECDSA P-256, valid 30 days, for localhost and 127.0.0.1
# (plus --hosts). A test CA made by a script is for tests: a production CA
# lives elsewhere, with its key offline. Needs openssl and build/mailbox
# (MAILBOX_BIN overrides).
set -euo pipefail

out=""
nodes=3
cluster="mailbox-test"
auth="certificate"
clients="alice,bob"
hosts=""
days=30
while (($#)); do
  case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --cluster) cluster=$2; shift 2 ;;
    --auth) auth=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) if [[ -z $out ]]; then out=$1; shift; else echo "make-test-pki: unknown argument $1" >&2; exit 2; fi ;;
  esac
done
if [[ -z $out ]]; then echo "usage: $0 OUT [--nodes N] [--cluster NAME] [--auth certificate|password]" >&2; exit 2; fi
if [[ $auth != certificate && $auth != password ]]; then echo "make-test-pki: --auth certificate|password" >&2; exit 2; fi
here=$(cd "$(dirname "$0")/.." && pwd)
mailbox_bin=${MAILBOX_BIN:-$here/build/mailbox}
if [[ ! -x $mailbox_bin ]]; then echo "make-test-pki: $mailbox_bin not built" >&2; exit 1; fi
if [[ -e $out/ca.pem ]]; then echo "make-test-pki: $out already holds a CA; not overwriting" >&2; exit 1; fi
mkdir -p "$out/clients" "$out/signing"
umask 077

san="DNS:localhost,IP:127.0.0.1"
[[ -n $hosts ]] && san="$san,$hosts"

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -subj "/CN=$cluster test CA" -keyout "$out/ca.key" -out "$out/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# issue NAME KEY CERT USAGE: a leaf certificate with CN=NAME signed by the CA.
issue() {
  local name=$1 key=$2 cert=$3 usage=$4 ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [[ $usage == *serverAuth* ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$key" -out "$cert.csr" 2>/dev/null
  openssl x509 -req -in "$cert.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial -days "$days" \
    -extfile "$ext" -out "$cert" 2>/dev/null
  rm -f "$cert.csr" "$ext"
}

password() { openssl rand -hex 16; }

"$mailbox_bin" keys create --kid k1 --out "$out/signing" >/dev/null

node_names=()
for i in $(seq 1 "$nodes"); do node_names+=("\"node-$i\""); done
users=""
for i in $(seq 1 "$nodes"); do
  d="$out/node$i"
  mkdir -p "$d/token-keys"
  issue "node-$i" "$d/node.key" "$d/node.pem" "serverAuth,clientAuth"
  cp "$out/ca.pem" "$d/ca.pem"
  cp "$out/signing/k1.pub" "$d/token-keys/k1.pub"
  {
    echo "cluster-name = \"$cluster\""
    echo "auth = \"$auth\""
    echo "node-names = [$(IFS=,; echo "${node_names[*]}")]"
  } >"$d/secure.toml"
  if [[ $auth == password ]]; then
    p=$(password)
    echo "$p" >"$d/node.password"
    users+="node-$i:$p"$'\n'
  fi
done
IFS=, read -r -a client_list <<<"$clients"
for c in "${client_list[@]}"; do
  [[ -z $c ]] && continue
  issue "$c" "$out/clients/$c.key" "$out/clients/$c.pem" "clientAuth"
  if [[ $auth == password ]]; then
    p=$(password)
    echo "$p" >"$out/clients/$c.password"
    users+="$c:$p"$'\n'
  fi
done
if [[ $auth == password ]]; then
  for i in $(seq 1 "$nodes"); do printf '%s' "$users" >"$out/node$i/users"; done
fi
rm -f "$out/ca.srl"
echo "make-test-pki: cluster '$cluster' ($auth authentication) in $out: node1..node$nodes, clients: $clients"
