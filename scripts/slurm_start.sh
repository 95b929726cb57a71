#!/usr/bin/env bash
# Install and start a single-node Slurm from Debian's packages (root, no systemd): the cluster the
# `slurm` tests submit to. Stop it with scripts/slurm_stop.sh. Safe to run twice.
#
# Every failure ends in one line saying which step failed and where its log is. The state of an
# earlier cluster of another name (slurmctld refuses it) is moved aside, and an existing
# /etc/slurm/slurm.conf that differs is kept as a dated copy before it is replaced; each says so.
set -euo pipefail
LOGS=/var/log/slurm
STATE=/var/spool/slurm/ctld
CONF=/etc/slurm/slurm.conf
CLUSTER=aebench
step="start"
trap 'echo "slurm: $step failed (exit $?); see $LOGS/ (slurmctld.log, slurmd.log)" >&2' ERR

if ! command -v slurmctld >/dev/null 2>&1; then
  step="installing slurmctld, slurmd and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }
fi
if sinfo -h -o %T 2>/dev/null | grep -q idle; then echo "slurm: already up"; exit 0; fi

step="starting munge"
[ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
install -d -o munge -g munge -m 0755 /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force
mkdir -p "$STATE" /var/spool/slurm/d "$LOGS" /etc/slurm

# slurmctld refuses the saved state of a cluster with another name: moved aside, not deleted.
if [ -s "$STATE/clustername" ] && [ "$(cat "$STATE/clustername")" != "$CLUSTER" ]; then
  kept="$STATE.$(cat "$STATE/clustername").$(date +%Y%m%d-%H%M%S)"
  mv "$STATE" "$kept" && mkdir -p "$STATE"
  echo "slurm: $STATE held the state of cluster '$(cat "$kept/clustername")'; moved it to $kept"
fi

step="writing $CONF"
H=$(hostname -s); C=$(nproc); M=$(free -m | awk '/^Mem:/{print $2}')
new=$(mktemp)
cat >"$new" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$H
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$STATE
SlurmdSpoolDir=/var/spool/slurm/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=10
NodeName=$H CPUs=$C RealMemory=$M State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if [ -s "$CONF" ] && ! cmp -s "$new" "$CONF"; then
  copy="$CONF.$(date +%Y%m%d-%H%M%S)"
  cp -p "$CONF" "$copy"
  echo "slurm: replacing $CONF with this single-node cluster's; the one it held is kept at $copy"
fi
install -m 0644 "$new" "$CONF" && rm -f "$new"

step="slurmctld"
slurmctld
step="slurmd"
slurmd
for _ in $(seq 1 60); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && { echo "slurm: up ($H, $C CPUs, partition debug)"; exit 0; }
  sleep 0.5
done
trap - ERR
echo "slurm: the node did not come up idle within 30 s (state: $(sinfo -h -o %T 2>/dev/null || echo none)); see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
exit 1
