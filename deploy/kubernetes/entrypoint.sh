#!/bin/sh
# One shard of a batch: Kubernetes sets JOB_COMPLETION_INDEX (0 .. completions-1) on every pod
# of an Indexed Job; SHARDS must equal the Job's completions. A pod that is restarted runs the
# same command again and skips the songs its shard already finished.
set -eu
: "${SHARDS:?set SHARDS to the number of shards (the Job's completions)}"
: "${JOB_COMPLETION_INDEX:?JOB_COMPLETION_INDEX is set by an Indexed Job; set it by hand elsewhere}"
REQUESTS="${REQUESTS:-/requests/requests.jsonl}"
OUT="${OUT:-/out}"
exec refrain batch "$REQUESTS" --out "$OUT" --shard "$JOB_COMPLETION_INDEX/$SHARDS" "$@"
