#!/usr/bin/env bash
# A stand-in for sbatch (profiles/cluster-smoke): runs one Snakemake job script in the
# background on this machine and prints its job id, as a batch system would.
#   submit.sh JOBSCRIPT
# Bookkeeping lives in $CLUSTER_SMOKE_DIR (default .snakemake/cluster-smoke, under the
# workflow's working directory): <id>.log (the job's output), <id>.pid, and <id>.rc once it
# has ended (its exit status), which status.sh reads.
set -euo pipefail
jobscript=${1:?usage: submit.sh JOBSCRIPT}
dir=${CLUSTER_SMOKE_DIR:-.snakemake/cluster-smoke}
mkdir -p "$dir"
id="$(date +%s%N).$$"
# The job runs in a session of its own (so cancel.sh can stop all of it), detached from this
# command's output (so Snakemake's submit call returns at once); <id>.pid holds its process group.
(
    setsid bash "$jobscript" >"$dir/$id.log" 2>&1 &
    echo "$!" >"$dir/$id.pid.tmp" && mv "$dir/$id.pid.tmp" "$dir/$id.pid"
    rc=0
    wait "$!" || rc=$?
    echo "$rc" >"$dir/$id.rc.tmp" && mv "$dir/$id.rc.tmp" "$dir/$id.rc"
) </dev/null >/dev/null 2>&1 &
while [[ ! -f "$dir/$id.pid" ]]; do sleep 0.05; done
echo "$id"
