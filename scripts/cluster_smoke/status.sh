#!/usr/bin/env bash
# A stand-in for sacct (profiles/cluster-smoke): the state of a job that submit.sh started,
# in the words Snakemake's cluster-generic executor reads: running, success or failed.
#   status.sh JOBID
set -euo pipefail
id=${1:?usage: status.sh JOBID}
dir=${CLUSTER_SMOKE_DIR:-.snakemake/cluster-smoke}

ended() {  # success or failed from the job's exit status; false while it has none
    [[ -f "$dir/$id.rc" ]] || return 1
    [[ "$(cat "$dir/$id.rc")" == 0 ]] && echo success || echo failed
}

if ended; then
    :
elif [[ -f "$dir/$id.pid" ]] && kill -0 "$(cat "$dir/$id.pid")" 2>/dev/null; then
    echo running
else
    # Gone: it may have ended between the two checks (its status is written as it exits);
    # gone without a status, or never submitted, it failed.
    sleep 1
    ended || echo failed
fi
