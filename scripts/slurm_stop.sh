#!/usr/bin/env bash
# Stop the single-node Slurm of scripts/slurm_start.sh, in the order that leaves no step behind:
# cancel every job, wait for the queue and the job steps to empty, then the daemons, then munge.
set -uo pipefail
command -v scancel >/dev/null 2>&1 || exit 0
scancel --user="$(id -un)" 2>/dev/null
for _ in $(seq 1 120); do
  [ -z "$(squeue -h 2>/dev/null)" ] && ! pgrep -x slurmstepd >/dev/null && break
  sleep 0.5
done
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
done
echo "slurm: stopped"
