#!/usr/bin/env bash
# Stop the single-node SLURM started by start-slurm.sh: cancel its jobs, then
# stop slurmd, slurmctld and munged by the process ids in their pid files.
# Safe to run when nothing is running; it leaves the directory for inspection
# (pass --clean to remove it).
set -uo pipefail

dir=${PHASEGAN_SLURM_DIR:-/tmp/phasegan-slurm}
export SLURM_CONF=$dir/etc/slurm.conf

log() { echo "stop-slurm: $*" >&2; }

stop() {  # stop NAME: TERM the pid in run/NAME.pid, then KILL after 10 s
    local pidfile=$dir/run/$1.pid pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    # Only a process of that name: a stale pid file may name a reused pid.
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
        log "stopping $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

if [ -s "$dir/run/slurmctld.pid" ] && command -v scancel >/dev/null 2>&1; then
    timeout 10 scancel --full --quiet --user=root >/dev/null 2>&1 || true
fi
stop slurmd
stop slurmctld
stop munged

if [ "${1:-}" = --clean ]; then
    rm -rf "$dir"
    log "removed $dir"
fi
