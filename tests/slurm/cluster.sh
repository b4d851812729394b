#!/usr/bin/env bash
# A real single-node SLURM cluster (this host = the only node) for testing pcseg's SLURM launch.
#
#   bash tests/slurm/cluster.sh start DIR   # write DIR/slurm.conf, start slurmctld + slurmd, wait for "idle";
#                                           # prints "export SLURM_CONF=DIR/slurm.conf" (also in DIR/env.sh)
#   bash tests/slurm/cluster.sh stop DIR    # cancel the cluster's jobs, stop both daemons, wait for them
#
# or, from bash:  source tests/slurm/cluster.sh; slurm_cluster_start DIR; ...; slurm_cluster_stop DIR
# (slurm_cluster_start then exports SLURM_CONF into the calling shell).
#
# Everything (config, spool, state, pid files, logs) lives in DIR; nothing is written to /etc/slurm.
# Outside DIR, `start` may only add "127.0.0.1 $(hostname -s)" to /etc/hosts when that name does not resolve.
# The daemons run as root without systemd, munge or cgroups (auth/none, cred/none, proctrack/linuxproc,
# task/none), so this is a test cluster for one user on one machine, never a real deployment.
# When slurmctld is missing, `start` installs Debian's slurm-wlm packages with apt-get (root only).
#
# Environment knobs:
#   SLURM_TEST_CONF_EXTRA   extra lines appended to slurm.conf (e.g. "KillWait=30")
#   SLURM_TEST_PORT         first TCP port to try for slurmctld (slurmd uses the next free one); default 6817
#   SLURM_TEST_START_TIMEOUT  seconds to wait for the node to become idle; default 60
#   SLURM_TEST_CPUS         CPUs the node offers (default: nproc, at least 2; may exceed the real count)

_slurm_die() { echo "cluster.sh: error: $*" >&2; return 1; }

_slurm_install() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
        && command -v sbatch >/dev/null 2>&1 && return 0
    local pkgs="slurmctld slurmd slurm-client munge"
    if [ "$(id -u)" != 0 ]; then
        _slurm_die "slurmctld/slurmd/sbatch not found and not running as root, so cannot install them." \
            "Install them first: apt-get install -y --no-install-recommends $pkgs"
        return 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        _slurm_die "slurmctld/slurmd/sbatch not found and apt-get is not available to install them" \
            "(need the Debian/Ubuntu packages: $pkgs)."
        return 1
    fi
    echo "cluster.sh: installing $pkgs ..." >&2
    # Keep the packages' init scripts from starting daemons (munged, a slurmd on /etc/slurm) during
    # installation: this cluster runs its own daemons from DIR.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends $pkgs >"${TMPDIR:-/tmp}/slurm-apt.log" 2>&1; then
        echo "cluster.sh: apt-get install failed; running apt-get update and retrying" >&2
        apt-get update -q >>"${TMPDIR:-/tmp}/slurm-apt.log" 2>&1 \
            && apt-get install -y -q --no-install-recommends $pkgs >>"${TMPDIR:-/tmp}/slurm-apt.log" 2>&1 \
            || rc=$?
    fi
    [ "$own_policy" = 1 ] && rm -f "$policy"
    if [ "$rc" != 0 ] || ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1; then
        tail -n 30 "${TMPDIR:-/tmp}/slurm-apt.log" >&2
        _slurm_die "could not install $pkgs with apt-get (log: ${TMPDIR:-/tmp}/slurm-apt.log)"
        return 1
    fi
    echo "cluster.sh: installed $(slurmctld -V)" >&2
}

# A TCP port on 127.0.0.1 that nothing listens on, starting at $1.
_slurm_free_port() {
    local p=$1
    while [ "$p" -lt $(($1 + 200)) ]; do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
        p=$((p + 1))
    done
    _slurm_die "no free TCP port in $1..$(($1 + 199))"
}

_slurm_write_conf() {
    local dir=$1 node=$2
    local cpus mem_kb mem_mb ctld_port d_port
    cpus=${SLURM_TEST_CPUS:-$(nproc)}
    [ "$cpus" -ge 2 ] || cpus=2                  # two 1-CPU tasks must fit (config_overrides allows it)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    mem_mb=$((mem_kb / 1024 * 9 / 10))          # a bit below the total, or slurmd marks the node invalid
    ctld_port=$(_slurm_free_port "${SLURM_TEST_PORT:-6817}") || return 1
    d_port=$(_slurm_free_port $((ctld_port + 1))) || return 1
    mkdir -p "$dir/spool" "$dir/state" "$dir/log" || return 1
    cat >"$dir/slurm.conf" <<EOF
# Single-node test cluster for pcseg (written by tests/slurm/cluster.sh).
ClusterName=pcsegtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=4
KillWait=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -n "${SLURM_TEST_CONF_EXTRA:-}" ]; then
        printf '%s\n' "$SLURM_TEST_CONF_EXTRA" >>"$dir/slurm.conf"
    fi
    echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env.sh"
}

# Jobs derive the torch.distributed master address from SLURM_JOB_NODELIST (= `hostname -s`), so the
# node name must resolve. SLURM itself does not need it (NodeAddr/SlurmctldHost use 127.0.0.1).
_slurm_check_hostname() {
    local node=$1
    getent hosts "$node" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && [ -w /etc/hosts ]; then
        echo "cluster.sh: host name '$node' does not resolve; adding '127.0.0.1 $node' to /etc/hosts" >&2
        printf '127.0.0.1\t%s\t# added by pcseg tests/slurm/cluster.sh\n' "$node" >>/etc/hosts
        getent hosts "$node" >/dev/null 2>&1 && return 0
    fi
    echo "cluster.sh: warning: host name '$node' does not resolve; jobs using it as MASTER_ADDR will hang" >&2
}

_slurm_logs() {
    local dir=$1 f
    for f in "$dir/log/slurmctld.log" "$dir/log/slurmd.log" "$dir/log/slurmctld.out" "$dir/log/slurmd.out"; do
        [ -s "$f" ] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2
    done
}

_slurm_pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

slurm_cluster_start() {
    local dir=${1:?usage: slurm_cluster_start DIR}
    _slurm_install || return 1
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    local node
    node=$(hostname -s) || return 1
    [ -n "$node" ] || { _slurm_die "hostname -s is empty"; return 1; }
    _slurm_check_hostname "$node"
    if [ -s "$dir/slurmctld.pid" ] && _slurm_pid_alive "$(cat "$dir/slurmctld.pid")"; then
        _slurm_die "a slurmctld from $dir is already running (pid $(cat "$dir/slurmctld.pid")); stop it first"
        return 1
    fi
    _slurm_write_conf "$dir" "$node" || return 1
    export SLURM_CONF="$dir/slurm.conf"
    local t0=$SECONDS
    # -i: ignore unreadable state; -c would also work (the state folder is fresh).
    slurmctld -i -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 \
        || { _slurm_logs "$dir"; _slurm_die "slurmctld failed to start"; return 1; }
    # -N: this node's name, so slurmd does not depend on the host name resolving.
    slurmd -f "$SLURM_CONF" -N "$node" >"$dir/log/slurmd.out" 2>&1 \
        || { _slurm_logs "$dir"; slurm_cluster_stop "$dir"; _slurm_die "slurmd failed to start"; return 1; }
    local timeout=${SLURM_TEST_START_TIMEOUT:-60} state=""
    while :; do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1)
        [ "$state" = idle ] && break
        if [ $((SECONDS - t0)) -ge "$timeout" ]; then
            echo "cluster.sh: node $node is '${state:-unknown}' after ${timeout}s, not idle" >&2
            scontrol show node "$node" >&2 2>&1 || true
            _slurm_logs "$dir"
            slurm_cluster_stop "$dir"
            _slurm_die "the test cluster in $dir did not come up"
            return 1
        fi
        sleep 0.2
    done
    echo "cluster.sh: cluster up in $((SECONDS - t0))s: node $node" \
        "($(sinfo -h -n "$node" -o %c) CPUs), SLURM_CONF=$SLURM_CONF" >&2
}

# Stop the daemon whose pid file is $1; SIGTERM, then SIGKILL after ~15 s.
_slurm_stop_daemon() {
    local pidfile=$1 name=$2 pid i
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    _slurm_pid_alive "$pid" || { rm -f "$pidfile"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do
        _slurm_pid_alive "$pid" || { rm -f "$pidfile"; return 0; }
        sleep 0.1
    done
    echo "cluster.sh: $name (pid $pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 50); do _slurm_pid_alive "$pid" || break; sleep 0.1; done
    rm -f "$pidfile"
}

slurm_cluster_stop() {
    local dir=${1:?usage: slurm_cluster_stop DIR}
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd) || return 1
    [ -f "$dir/slurm.conf" ] || return 0
    local conf="$dir/slurm.conf" i
    # Cancel the jobs first, so their slurmstepd and tasks end with them instead of outliving slurmd.
    if [ -s "$dir/slurmctld.pid" ] && _slurm_pid_alive "$(cat "$dir/slurmctld.pid")"; then
        SLURM_CONF=$conf scancel --quiet --state=PENDING 2>/dev/null || true
        SLURM_CONF=$conf scancel --quiet --state=RUNNING 2>/dev/null || true
        SLURM_CONF=$conf scancel --quiet --state=SUSPENDED 2>/dev/null || true
        for i in $(seq 100); do
            [ -z "$(SLURM_CONF=$conf squeue -h -o %i -t PENDING,RUNNING,COMPLETING,SUSPENDED 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    _slurm_stop_daemon "$dir/slurmd.pid" slurmd
    _slurm_stop_daemon "$dir/slurmctld.pid" slurmctld
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    case "${1:-}" in
        start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }
               slurm_cluster_start "$2" || exit 1
               echo "export SLURM_CONF=$SLURM_CONF" ;;
        stop)  [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
               slurm_cluster_stop "$2" ;;
        *)     echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
    esac
fi
