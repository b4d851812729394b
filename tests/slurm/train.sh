#!/usr/bin/env bash
# pcseg on a real single-node SLURM cluster (tests/slurm/cluster.sh), through launch/slurm/train.sbatch
# exactly as a user submits it (only the header's cluster settings are overridden on the command line):
#   1. a 2-task CPU job trains the synthetic config to the end;
#   2. the same job, stopped mid-run by USR1 to its batch shell (what --signal=B:USR1@... does before
#      a time limit), saves last.pth, requeues itself and finishes from last.pth, with the same final
#      weights as the uninterrupted job;
#   3. the same job with DataLoader workers, cancelled by a plain `scancel JOB` (SIGTERM to every
#      process of the job, workers included, then SIGKILL after KillWait): it saves last.pth,
#      requeues itself and finishes with the uninterrupted job's weights.
#
#   bash tests/slurm/train.sh            (root, or with SLURM already installed; uses .venv)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=cluster.sh
source "$HERE/cluster.sh"
# shellcheck source=common.sh
source "$HERE/common.sh"
export PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || { echo "slurm-train: $PYTHON not found: run make setup first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcseg-slurm-train.XXXXXX")
CLUSTER=$WORK/cluster
T0=$EPOCHREALTIME
log() { echo "slurm-train: [$(elapsed "$T0")s] $*"; }
fail() {
    echo "slurm-train: FAIL: $*" >&2
    local f
    for f in "$WORK"/*.out; do [ -f "$f" ] && { echo "----- $f -----" >&2; tail -n 60 "$f" >&2; }; done
    _slurm_logs "$CLUSTER"
    exit 1
}
cleanup() {
    local rc=$?
    trap - EXIT
    slurm_cluster_stop "$CLUSTER" || true
    [ "${SLURM_TRAIN_KEEP:-0}" = 1 ] && echo "slurm-train: work folder kept: $WORK" || rm -rf "$WORK"
    [ "$rc" = 0 ] && log PASS || echo "slurm-train: failed (exit $rc)" >&2
    exit "$rc"
}
trap cleanup EXIT
job_state() {  # the last state of JOB in the completion log (scontrol forgets finished jobs fast)
    grep "JobId=$1 " "$CLUSTER/log/jobcomp.log" 2>/dev/null | tail -n 1 | tr ' ' '\n' | sed -n 's/^JobState=//p'
}

# ---- data: synthetic scenes in the ScanNet release format, converted to caches -----------------
"$PYTHON" "$REPO/data_prep/synthetic.py" --out "$WORK/raw" --scenes 6 --seed 3 --size small >/dev/null
"$PYTHON" "$REPO/data_prep/scannet200.py" --raw "$WORK/raw" --out "$WORK/caches" --no-progress >/dev/null
log "caches ready"

slurm_cluster_start "$CLUSTER" || fail "cluster did not start"
log "cluster up"

# The header asks for GPU nodes of a real cluster; this one has 2 CPUs and no GPU.
SBATCH=(sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --partition=debug
        --time=15 --chdir="$REPO")
OVR=(data.root="$WORK/caches" data.num_workers=0 data.grid_size=0.1 data.point_max=4000 data.loop=4
     model.preset=tiny train.epochs=3 train.batch_size=2 train.eval_every=3 train.log_every=1
     train.progress=false train.device=cpu wandb.mode=disabled dist.timeout_s=60)

# ---- 1. uninterrupted ---------------------------------------------------------------------------
JOB1=$("${SBATCH[@]}" --output="$WORK/full.out" "$REPO/launch/slurm/train.sbatch" \
       configs/synthetic_base.yaml "${OVR[@]}" out_dir="$WORK/full") || fail "sbatch failed"
finished() {  # a final state (a requeued run logs PENDING or REQUEUED)
    local s
    s=$(job_state "$1")
    case "$s" in "" | PENDING | REQUEUED | PREEMPTED | RUNNING) return 1 ;; esac
}
wait_for 600 "job $JOB1 to end" finished "$JOB1"
[ "$(job_state "$JOB1")" = COMPLETED ] || fail "job $JOB1 ended $(job_state "$JOB1")"
log "uninterrupted job $JOB1 completed"

# ---- 2. stopped by USR1, requeued, finished from last.pth --------------------------------------
JOB2=$("${SBATCH[@]}" --output="$WORK/part.out" "$REPO/launch/slurm/train.sbatch" \
       configs/synthetic_base.yaml "${OVR[@]}" out_dir="$WORK/part") || fail "sbatch failed"
at_step() { grep -q '"step": [3-9]' "$WORK/part/metrics.jsonl" 2>/dev/null; }
wait_for 300 "job $JOB2 to pass step 3" at_step
scancel --batch --signal=USR1 "$JOB2" || fail "scancel --batch --signal=USR1 $JOB2 failed"
log "USR1 sent to job $JOB2"
requeued() { grep -q "pcseg: state saved; requeueing job $JOB2" "$WORK/part.out" 2>/dev/null; }
wait_for 120 "job $JOB2 to save and requeue" requeued
log "job $JOB2 saved its state and requeued itself"
# No `scontrol update StartTime=now` here: a requeued job started before the old credential
# expires (AuthInfo=cred_expire=10) is killed as "Job credential revoked" and ends FAILED.
wait_for 600 "job $JOB2 to end" finished "$JOB2"
[ "$(job_state "$JOB2")" = COMPLETED ] || fail "job $JOB2 ended $(job_state "$JOB2")"
grep -q "restart 1" "$WORK/part.out" || fail "job $JOB2 did not run a second time"
log "requeued job $JOB2 completed"

same_weights() {  # same_weights RUN: its last.pth holds the uninterrupted job's step and weights
    "$PYTHON" - "$WORK/full/last.pth" "$WORK/$1/last.pth" <<'PY' || fail "final weights of $1 differ"
import sys
import torch
a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in sys.argv[1:3])
assert a["step"] == b["step"], (a["step"], b["step"])
bad = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
assert not bad, bad[:5]
print(f"slurm-train: step {a['step']}: {sys.argv[2]} has the uninterrupted run's weights")
PY
}
same_weights part

# ---- 3. a plain scancel (SIGTERM to every process, loader workers included) requeues too --------
JOB3=$("${SBATCH[@]}" --output="$WORK/cancel.out" "$REPO/launch/slurm/train.sbatch" \
       configs/synthetic_base.yaml "${OVR[@]}" data.num_workers=1 out_dir="$WORK/cancel") || fail "sbatch failed"
at_step3() { grep -q '"step": [3-9]' "$WORK/cancel/metrics.jsonl" 2>/dev/null; }
wait_for 300 "job $JOB3 to pass step 3" at_step3
scancel "$JOB3" || fail "scancel $JOB3 failed"
log "plain scancel sent to job $JOB3"
requeued3() { grep -q "pcseg: state saved; requeueing job $JOB3" "$WORK/cancel.out" 2>/dev/null; }
wait_for 120 "job $JOB3 to save and requeue after scancel" requeued3
log "job $JOB3 saved its state and requeued itself"
# the completion log first records the cancelled run (CANCELLED), then the requeued one
restarted3() { grep -q "restart 1" "$WORK/cancel.out" 2>/dev/null; }
wait_for 120 "job $JOB3 to run again" restarted3
wait_for 600 "job $JOB3 to end" finished "$JOB3"
[ "$(job_state "$JOB3")" = COMPLETED ] || fail "job $JOB3 ended $(job_state "$JOB3")"
grep -q "killed by signal" "$WORK/cancel.out" && fail "a loader worker was killed: $(grep -m1 'killed by signal' "$WORK/cancel.out")"
log "requeued job $JOB3 completed"
same_weights cancel
