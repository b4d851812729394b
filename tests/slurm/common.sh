# Helpers shared by the SLURM test scripts (sourced). The caller defines fail MESSAGE.

# elapsed T0: seconds since T0 (an $EPOCHREALTIME value), one decimal.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# wait_for TIMEOUT WHAT COMMAND...: poll COMMAND every 0.1 s until it succeeds, or fail after TIMEOUT s.
wait_for() {
    local timeout=$1 what=$2 t0=$EPOCHREALTIME
    shift 2
    until "$@"; do
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { exit !(b - a > t) }' \
            && fail "timed out after ${timeout}s waiting for: $what"
        sleep 0.1
    done
}
