#!/usr/bin/env bash
# Start a throw-away, single-node SLURM on 127.0.0.1 for the tests:
# munged, slurmctld and slurmd, each with private files under one directory.
#
#   deploy/testing/start-slurm.sh            # start (or reuse) and wait for the node
#   export SLURM_CONF=/tmp/phasegan-slurm/etc/slurm.conf
#   sbatch --wrap hostname; sinfo; squeue
#   deploy/testing/stop-slurm.sh             # stop the daemons again
#
# Needs root and Debian's slurm-wlm and munge packages:
#   apt-get update && apt-get install -y slurm-wlm munge
# Nothing outside PHASEGAN_SLURM_DIR is written: the system's /etc/slurm and
# /etc/munge stay untouched, and every daemon listens on 127.0.0.1 only.
# Running it again while the daemons are up reuses them (idempotent); a
# half-started or stale set is stopped and started afresh.
set -euo pipefail

dir=${PHASEGAN_SLURM_DIR:-/tmp/phasegan-slurm}
timeout=${PHASEGAN_SLURM_TIMEOUT:-60}
node=pgnode1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "start-slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- check the tools are there -------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (slurmd must start jobs as any user)"
for tool in munged slurmctld slurmd sinfo scontrol sbatch; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found;" \
        "install it with: apt-get update && apt-get install -y slurm-wlm munge"
done

export SLURM_CONF=$dir/etc/slurm.conf

# --- directories, munge key and slurm.conf ----------------------------------------

mkdir -p "$dir"/{etc,run,log,state,spool,munge}
chmod 0700 "$dir/munge"
chmod 0755 "$dir" "$dir/etc"
if [ ! -s "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 0600 "$dir/munge/munge.key"

# Leave some memory to the OS and the test process itself; slurmd drains a
# node whose configured memory exceeds what it finds. PHASEGAN_SLURM_CPUS
# may declare more CPUs than there are (config_overrides below lets slurmd
# accept it): the tests run jobs that mostly wait, and want room for the
# replacement of a job that is still winding down.
cpus=${PHASEGAN_SLURM_CPUS:-$(nproc)}
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

cat >"$SLURM_CONF.new" <<EOF
# Written by deploy/testing/start-slurm.sh: one node on 127.0.0.1, for tests.
ClusterName=phasegan-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/run/munge.socket
# Listen on the controller's and the node's address (127.0.0.1 for both)
# instead of on every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=${PHASEGAN_SLURMCTLD_PORT:-6817}
SlurmdPort=${PHASEGAN_SLURMD_PORT:-6818}
SrunPortRange=60001-60100

StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups in containers and CI runners: track processes by /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# A plain-text record of every finished job: the tests read it to see which
# jobs ran (sacct needs slurmdbd, which this set-up does without).
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MinJobAge=600
ReturnToService=2
MailProg=/bin/true
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
KillWait=5
InactiveLimit=0

NodeName=$node NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus \
    RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
chmod 0644 "$SLURM_CONF.new"

# --- reuse a running set of daemons with the same configuration ------------------

alive() {  # alive NAME: the pid in run/NAME.pid is a running NAME
    local pidfile=$dir/run/$1.pid
    [ -s "$pidfile" ] && [ "$(cat "/proc/$(cat "$pidfile")/comm" 2>/dev/null)" = "$1" ]
}

if alive munged && alive slurmctld && alive slurmd \
    && cmp -s "$SLURM_CONF" "$SLURM_CONF.new" \
    && [ "$(sinfo -h -n "$node" -o %t 2>/dev/null)" = idle ]; then
    rm -f "$SLURM_CONF.new"
    log "already running in $dir; node $node is idle"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
fi
"$here/stop-slurm.sh" || true
mv "$SLURM_CONF.new" "$SLURM_CONF"

# --- start the daemons --------------------------------------------------------------

: >"$dir/log/jobcomp.log"  # job ids restart at 1 with slurmctld -c

log "starting munged"
munged --force \
    --key-file="$dir/munge/munge.key" \
    --socket="$dir/run/munge.socket" \
    --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" \
    </dev/null || die "munged failed; see $dir/log/munged.log"

log "starting slurmctld"
slurmctld -c </dev/null || die "slurmctld failed; see $dir/log/slurmctld.log"

log "starting slurmd"
slurmd -N "$node" </dev/null || die "slurmd failed; see $dir/log/slurmd.log"

# --- wait until the node takes jobs -----------------------------------------------

log "waiting up to ${timeout}s for node $node to become idle"
deadline=$((SECONDS + timeout))
state=
while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
    case $state in
        idle) break ;;
        drain* | down*)
            # Left over from an earlier run: clear it.
            scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
if [ "$state" != idle ]; then
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    die "node $node is '${state:-unknown}', not idle, after ${timeout}s"
fi

log "SLURM is up in $dir; node $node ($cpus CPUs, $mem_mb MB) is idle"
echo "export SLURM_CONF=$SLURM_CONF"
