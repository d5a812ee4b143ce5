#!/bin/bash
# Used by docs/BENCHMARKS.md, "A million mailboxes". Run under flock /tmp/mailbox-bench.lock on a shared machine.
# usage: million-run.sh BIN_DIR DATA_DIR LABEL COUNT
# Starts mailboxd, measures idle RSS, fills COUNT mailboxes with one 64-byte message each, measures RSS,
# kills -9, restarts and times until stats answers, measures RSS again.
set -u
BIN=$1; DATA=$2; LABEL=$3; COUNT=${4:-1000000}
FILL=${MAILBOX_BUILD_DIR:-$1}/mailbox-fill
CLI=${MAILBOX_BUILD_DIR:-$1}/mailbox
rm -rf $DATA; mkdir -p $DATA
$BIN/mailboxd --data-dir $DATA/d --listen tcp/127.0.0.1:17480 --raft-address 127.0.0.1:17481 > $DATA/log1 2>&1 &
PID=$!
until $CLI --connect tcp/127.0.0.1:17480 --timeout-ms 2000 stats bench-0 >/dev/null 2>&1; do sleep 0.2; done
echo "$LABEL idle rss KiB: $(ps -o rss= -p $PID)"
$FILL --connect tcp/127.0.0.1:17480 --count $COUNT --mailboxes $COUNT --size 64 --window 256
sleep 2
echo "$LABEL filled rss KiB: $(ps -o rss= -p $PID)"
grep -c "snapshot at" $DATA/log1
kill -9 $PID; sleep 0.5
du -sh $DATA/d/snapshots $DATA/d/log
START=$(date +%s.%N)
$BIN/mailboxd --data-dir $DATA/d --listen tcp/127.0.0.1:17480 --raft-address 127.0.0.1:17481 > $DATA/log2 2>&1 &
PID=$!
until $CLI --connect tcp/127.0.0.1:17480 --timeout-ms 2000 stats bench-0 2>/dev/null | grep -q '"messages":1'; do sleep 0.05; done
END=$(date +%s.%N)
echo "$LABEL restart seconds: $(echo "$END - $START" | bc)"
sleep 2
echo "$LABEL restarted rss KiB: $(ps -o rss= -p $PID)"
echo "PID=$PID"
