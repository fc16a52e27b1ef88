#!/usr/bin/env bash
# A stand-in for scancel (profiles/cluster-smoke): stops the jobs that submit.sh started,
# each its whole process group (the job script and the Snakemake it runs).
#   cancel.sh JOBID...
set -uo pipefail
dir=${CLUSTER_SMOKE_DIR:-.snakemake/cluster-smoke}
for id in "$@"; do
    pgid=$(cat "$dir/$id.pid" 2>/dev/null) || continue
    kill -TERM -- "-$pgid" 2>/dev/null
done
exit 0
