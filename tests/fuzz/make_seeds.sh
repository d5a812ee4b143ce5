#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/ (they
# are committed; run this again only to change them). Inputs that once made
# a target fail are kept beside them as corpus/<target>/regression-*. Token seeds are signed
# with fuzz_test_key.pem, the test key fuzz_keys.hpp trusts. Needs build/mailbox.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mailbox=${MAILBOX_BIN:-$here/../../build/mailbox}
corpus=$here/corpus
# Seeds are rewritten; inputs kept from findings (regression-*) stay.
mkdir -p "$corpus/request" "$corpus/attachment" "$corpus/token" "$corpus/entry" "$corpus/raft_message" \
  "$corpus/snapshot"
rm -f "$corpus"/*/seed-*

n=0
seed() { n=$((n + 1)); printf '%s' "$2" >"$corpus/$1/seed-$(printf %03d $n)"; }

for s in $'forge/mailbox/alice\n' $'forge/mailbox/alice/consume\nn=10;wait=30s;lease=5m;rid=r-1' \
         $'forge/mailbox/alice/peek\nn=1000;wait=500ms' $'forge/mailbox/alice/put\nttl=24h;rid=order-17' \
         $'forge/mailbox/alice/ack\nid=17;rid=x' $'forge/mailbox/alice/nack\nid=18446744073709551615' \
         $'forge/mailbox/alice.dlq/stats\n' $'forge/mailbox/*/stats\nlimit=10;after=bob' \
         $'forge/mailbox/team-$*/stats\n' $'forge/mailbox/@admin\n' $'forge/mailbox/a/b/c\n_anyke' \
         $'forge/mailbox/alice\nn=0;n=1' $'forge/mailbox/alice/consume\nwait=99999999999999999999h'; do
  seed request "$s"
done
# SPEC v2 queue features (own numbering, so the seeds above keep their names).
v=0
for s in $'forge/mailbox/alice/put\ndelay=30s;ttl=1h' $'forge/mailbox/alice/extend\nid=17;lease=5m;rid=e' \
         $'forge/mailbox/alice/purge\nrid=p' $'forge/mailbox/alice/redrive\nn=100000' \
         $'forge/mailbox/$*-eu/stats\nlimit=10000' $'{"token":"x","delay":"30s","ttl":"1h"}'; do
  v=$((v + 1)); printf '%s' "$s" >"$corpus/request/seed-v2-$(printf %02d $v)"
done

tok() {
  "$mailbox" token create --key "$here/fuzz_test_key.pem" --kid fuzz --cluster "${4:-fuzz-cluster}" \
    --sub "$1" --mailboxes "$2" --ops "$3" --expires-at 1900000000
}
good=$(tok alice 'alice,team-*' put,consume)
all=$(tok ops '*' put,consume,peek,stats,ack,purge,redrive,list,admin)
foreign=$(tok bob bob peek other-cluster)
for t in "$good" "$all" "$foreign" "${good%.*}.AAAA" "eyJhbGciOiJub25lIn0.e30." "a.b.c" ""; do
  seed token "$t"
  seed attachment "{\"token\":\"$t\"}"
done
seed attachment "{\"token\":\"$good\",\"content-type\":\"text/plain\",\"meta\":{\"k\":[1,2,3]}}"
seed attachment '{"token":5}'
seed attachment '[]'
seed attachment '{"token":"\u0000"}'
seed token '{"sub":"a","aud":["fuzz-cluster"],"exp":1900000000,"nbf":0,"mbx":["a","b*"],"ops":["list"]}'
echo "make_seeds: $n seeds in $corpus"

# The codec targets' seeds come from the production encoders (make fuzz-build
# builds make_codec_seeds beside the targets).
"${MAKE_CODEC_SEEDS:-$here/../../build-fuzz/make_codec_seeds}" "$corpus"
