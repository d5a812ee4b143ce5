#!/usr/bin/env bash
# Runs each libFuzzer target (tests/fuzz) for SECONDS, starting from its
# seed corpus in tests/fuzz/corpus/<target> plus what earlier runs found
# (kept in BUILD/corpus/<target>; the repository's seeds are only read).
# A crash leaves its input in BUILD/artifacts/ and fails the run.
#
#   scripts/fuzz.sh BUILD SECONDS [TARGET...]     (make fuzz, make fuzz-short)
set -euo pipefail
build=$1
seconds=$2
shift 2
targets=("$@")
((${#targets[@]})) || targets=(request attachment token entry raft_message snapshot)
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/artifacts"
status=0
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  mkdir -p "$work"
  log="$build/fuzz_$t.log"
  if "$build/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      "$work" "$here/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $t: $runs executions in ${seconds}s, $cov, corpus $(ls "$work" | wc -l) files, no crash"
  else
    echo "fuzz: $t: FAILED, see $log and $build/artifacts/" >&2
    grep -E 'ERROR|SUMMARY' "$log" >&2 || true
    status=1
  fi
done
exit $status
