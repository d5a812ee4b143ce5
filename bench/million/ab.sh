#!/bin/bash
# Used by docs/BENCHMARKS.md, "A million mailboxes". Run under flock /tmp/mailbox-bench.lock on a shared machine.
# Two mailboxd at once: A with an empty state, B with COUNT one-message mailboxes;
# then `mailbox bench` alternately against A and B (ROUNDS rounds), so machine noise hits both alike.
set -u
BIN=$1; DATA=$2; COUNT=${3:-1000000}; ROUNDS=${4:-3}; CFG=${5:-"1 1"}
CLI=${MAILBOX_BUILD_DIR:-build}/mailbox
rm -rf $DATA; mkdir -p $DATA
$BIN/mailboxd --data-dir $DATA/a --listen tcp/127.0.0.1:17490 --raft-address 127.0.0.1:17491 > $DATA/loga 2>&1 & PA=$!
$BIN/mailboxd --data-dir $DATA/b --listen tcp/127.0.0.1:17492 --raft-address 127.0.0.1:17493 > $DATA/logb 2>&1 & PB=$!
for port in 17490 17492; do until $CLI --connect tcp/127.0.0.1:$port --timeout-ms 2000 stats x >/dev/null 2>&1; do sleep 0.2; done; done
${MAILBOX_BUILD_DIR:-build}/mailbox-fill --connect tcp/127.0.0.1:17492 --count $COUNT --mailboxes $COUNT --size 64 --window 256
sleep 10  # let the fill's snapshot writes drain
set -- $CFG
for r in $(seq $ROUNDS); do
  for side in A:17490 B:17492; do
    echo -n "${side%%:*} round $r $1+$2 "
    $CLI --connect tcp/127.0.0.1:${side##*:} --json bench --producers $1 --consumers $2 --size 64 --duration 10s --warmup 2s --mailbox hot | python3 -c "import sys,json; d=json.load(sys.stdin); print('puts/s %.0f consumed/s %.0f put p50 %.2f p99 %.2f' % (d['puts_per_second'], d['messages_consumed_per_second'], d['put_latency']['p50_ms'], d['put_latency']['p99_ms']))"
  done
done
echo "B rss KiB: $(ps -o rss= -p $PB)"
grep -c "snapshot at" $DATA/logb
kill $PA $PB
