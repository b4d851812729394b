#!/usr/bin/env bash
# Smoke test of the single-node SLURM test cluster (tests/slurm/cluster.sh):
#   1. a 2-task x 1-CPU batch job: srun starts both tasks with the expected SLURM_* rank variables;
#   2. stop and requeue, the way launch/slurm/train.sbatch handles a time limit: USR1 to the batch
#      shell (scancel --batch --signal=USR1), the shell forwards it to its srun step, the tasks exit
#      with code 75, the shell requeues the job, and the requeued run (SLURM_RESTART_COUNT=1) completes.
#
#   bash tests/slurm/smoke.sh            (root, or with SLURM already installed)
#
# SLURM_SMOKE_KEEP=1 keeps the work folder (cluster logs, job outputs) for inspection.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=cluster.sh
source "$HERE/cluster.sh"
# shellcheck source=common.sh
source "$HERE/common.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pcseg-slurm-smoke.XXXXXX")
CLUSTER=$WORK/cluster
T_START=$EPOCHREALTIME

log() { echo "smoke: [$(elapsed "$T_START")s] $*"; }
fail() {
    echo "smoke: FAIL: $*" >&2
    local f
    for f in "$WORK"/*.out; do
        [ -f "$f" ] && { echo "----- $f -----" >&2; cat "$f" >&2; }
    done
    _slurm_logs "$CLUSTER"
    exit 1
}

cleanup() {
    local rc=$?
    trap - EXIT
    slurm_cluster_stop "$CLUSTER" || true
    if [ "${SLURM_SMOKE_KEEP:-0}" = 1 ]; then
        echo "smoke: work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    if [ "$rc" = 0 ]; then
        log "PASS"
    else
        echo "smoke: failed (exit $rc)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT


job_field() {  # job_field JOB KEY -> the value of KEY= in `scontrol show job`
    scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

t=$EPOCHREALTIME
slurm_cluster_start "$CLUSTER" || fail "cluster did not start"
NODE=$(hostname -s)
log "cluster up in $(elapsed "$t")s (SLURM_CONF=$SLURM_CONF)"
sinfo

# ---- 1. ranks ---------------------------------------------------------------------------------
cat >"$WORK/ranks.sh" <<'EOF'
#!/usr/bin/env bash
echo "batch: nodelist=$SLURM_JOB_NODELIST ntasks=$SLURM_NTASKS"
srun bash -c 'echo "task procid=$SLURM_PROCID ntasks=$SLURM_NTASKS localid=$SLURM_LOCALID nodelist=$SLURM_JOB_NODELIST"'
EOF
t=$EPOCHREALTIME
sbatch --wait --quiet --ntasks=2 --cpus-per-task=1 --time=2 --job-name=smoke-ranks \
    --chdir="$WORK" --output="$WORK/ranks.out" "$WORK/ranks.sh" || fail "rank job failed"
log "rank job done in $(elapsed "$t")s (sbatch --wait)"
cat "$WORK/ranks.out"
for r in 0 1; do
    grep -qx "task procid=$r ntasks=2 localid=$r nodelist=$NODE" "$WORK/ranks.out" \
        || fail "no line for task $r with procid=$r ntasks=2 localid=$r nodelist=$NODE"
done
[ "$(grep -c '^task ' "$WORK/ranks.out")" = 2 ] || fail "expected exactly 2 task lines"

# ---- 2. USR1 -> exit 75 -> requeue -> restart ---------------------------------------------------
cat >"$WORK/requeue.sh" <<'EOF'
#!/usr/bin/env bash
restart=${SLURM_RESTART_COUNT:-0}
echo "batch: start restart=$restart"
if [ "$restart" -ge 1 ]; then
    srun bash -c 'echo "task $SLURM_PROCID: resumed restart=$SLURM_RESTART_COUNT"'
    echo "batch: done"
    exit 0
fi
# Tasks: wait for USR1, then exit 75 ("stopped, state saved, requeue me"). srun signals every process
# of the step, so each task's running `sleep` dies of USR1 too ("User defined signal 1" in the output).
srun bash -c 'trap "echo \"task \$SLURM_PROCID: USR1\"; exit 75" USR1
              echo "task $SLURM_PROCID: ready"
              for i in $(seq 600); do sleep 0.1; done
              exit 1' &
step=$!
trap 'echo "batch: USR1, forwarding to srun"; kill -USR1 $step' USR1
while :; do
    wait "$step"
    code=$?
    kill -0 "$step" 2>/dev/null || break
done
echo "batch: srun exit $code"
if [ "$code" -eq 75 ]; then
    scontrol requeue "$SLURM_JOB_ID"
    echo "batch: requeued"
fi
exit "$code"
EOF
rm -f "$WORK/requeue.out"
t=$EPOCHREALTIME
JOB=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=3 --job-name=smoke-requeue --requeue \
    --open-mode=append --chdir="$WORK" --output="$WORK/requeue.out" "$WORK/requeue.sh") \
    || fail "sbatch of the requeue job failed"
tasks_ready() { [ "$(grep -c ': ready$' "$WORK/requeue.out" 2>/dev/null)" = 2 ]; }
wait_for 30 "both tasks of job $JOB running" tasks_ready
log "job $JOB: tasks running $(elapsed "$t")s after submission"

t=$EPOCHREALTIME
scancel --batch --signal=USR1 "$JOB" || fail "scancel --batch --signal=USR1 $JOB failed"
requeued() { [ "$(job_field "$JOB" JobState)" = PENDING ] && [ "$(job_field "$JOB" Restarts)" -ge 1 ]; }
wait_for 30 "job $JOB requeued (PENDING, Restarts>=1)" requeued
log "job $JOB: stopped and requeued $(elapsed "$t")s after USR1"

t2=$EPOCHREALTIME
restarted() { grep -q '^batch: start restart=1$' "$WORK/requeue.out" 2>/dev/null; }
wait_for 90 "job $JOB started again" restarted
log "job $JOB: running again $(elapsed "$t2")s after the requeue (cred_expire=10)"
completed() {
    local s
    s=$(job_field "$JOB" JobState)
    case "$s" in
        COMPLETED) return 0 ;;
        FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
            fail "job $JOB ended in state $s" ;;
    esac
    return 1
}
wait_for 30 "job $JOB completed" completed
log "job $JOB: completed $(elapsed "$t")s after USR1"
cat "$WORK/requeue.out"

out=$WORK/requeue.out
for r in 0 1; do
    grep -qx "task $r: USR1" "$out" || fail "task $r did not get USR1"
    grep -qx "task $r: resumed restart=1" "$out" || fail "task $r did not run again with SLURM_RESTART_COUNT=1"
done
grep -qx 'batch: USR1, forwarding to srun' "$out" || fail "the batch shell did not get USR1"
grep -qx 'batch: srun exit 75' "$out" || fail "srun did not exit with the tasks' code 75"
grep -qx 'batch: done' "$out" || fail "the requeued run did not finish"
[ "$(job_field "$JOB" Restarts)" = 1 ] || fail "Restarts=$(job_field "$JOB" Restarts), expected 1"
[ "$(job_field "$JOB" ExitCode)" = 0:0 ] || fail "ExitCode=$(job_field "$JOB" ExitCode), expected 0:0"
