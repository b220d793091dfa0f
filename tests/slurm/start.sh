#!/usr/bin/env bash
# A one-node SLURM "cluster" on 127.0.0.1 for testing the cluster profile (CI, as root).
# munged + slurmctld + slurmd started by hand (no systemd, no cgroups), no slurmdbd: the
# profile polls with squeue and finished jobs stay visible (MinJobAge) and are appended to a
# job-completion log, which is what the tests read as the scheduler's records.
#   STATE_DIR   pid list, logs, fake GPU devices   (default ${TMPDIR:-/tmp}/microlib-slurm)
#   SLURM_CPUS  CPUs advertised (default 8, so --cores 8 jobs are not stuck PENDING)
#   SLURM_MEM_MB memory advertised (default 64000; not enforced without cgroups)
#   FAKE_GPUS   gres/gpu devices (symlinks to /dev/null; default 2)
#   SKIP_INSTALL=1 to skip apt-get
set -euo pipefail
STATE_DIR=${STATE_DIR:-${TMPDIR:-/tmp}/microlib-slurm}
SLURM_CPUS=${SLURM_CPUS:-8}
SLURM_MEM_MB=${SLURM_MEM_MB:-64000}
FAKE_GPUS=${FAKE_GPUS:-2}
NODE=$(hostname -s)
say() { echo "[slurm-start] $*"; }

if [ "$(id -u)" != 0 ]; then echo "needs root (starts munged, slurmctld, slurmd)" >&2; exit 3; fi

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  need=0
  for p in munge slurmctld slurmd slurm-client; do dpkg -s "$p" >/dev/null 2>&1 || need=1; done
  if [ $need = 1 ]; then
    say "installing munge slurmctld slurmd slurm-client from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
  fi
fi

mkdir -p "$STATE_DIR"
PIDS="$STATE_DIR/pids"
if [ -s "$PIDS" ]; then
  while read -r name pid; do
    if [ -d "/proc/$pid" ]; then echo "$name ($pid) still running: run stop.sh first" >&2; exit 1; fi
  done < "$PIDS"
fi
: > "$PIDS"

mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmd
rm -rf /var/lib/slurm/slurmctld && mkdir -p /var/lib/slurm/slurmctld
chown slurm:slurm /var/lib/slurm/slurmctld /var/log/slurm
rm -f /var/log/slurm/*.log
# the job-completion log must be writable by the slurm user, and STATE_DIR may sit below a
# directory only root can enter (pytest's tmp dirs are 0700): keep it in /var/log/slurm and
# link it into STATE_DIR, where the tests read it
JOBCOMP=/var/log/slurm/jobcomp.log
: > "$JOBCOMP"; chown slurm:slurm "$JOBCOMP"
ln -sfn "$JOBCOMP" "$STATE_DIR/jobcomp.log"

overrides=""; [ "$SLURM_CPUS" -gt "$(nproc)" ] && overrides="SlurmdParameters=config_overrides"
gres_types=""; gres_node=""
rm -f /etc/slurm/gres.conf
if [ "$FAKE_GPUS" -gt 0 ]; then
  # gres/gpu needs File= character devices; CUDA_VISIBLE_DEVICES is then set for --gpus jobs
  gres_types="GresTypes=gpu"; gres_node="Gres=gpu:$FAKE_GPUS"
  mkdir -p "$STATE_DIR/fakegpu"
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    ln -sfn /dev/null "$STATE_DIR/fakegpu/nvidia$i"
    echo "NodeName=$NODE Name=gpu File=$STATE_DIR/fakegpu/nvidia$i" >> /etc/slurm/gres.conf
  done
fi

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=microlibtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# finished jobs stay in squeue for an hour: the tests read them back
MinJobAge=3600
KillWait=10
InactiveLimit=0
Waittime=0
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
$overrides
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS RealMemory=$SLURM_MEM_MB $gres_node State=UNKNOWN
# without DefMemPerCPU a job with no --mem takes all node memory and the rest queue
PartitionName=debug Nodes=$NODE Default=YES MaxTime=7-00:00:00 DefaultTime=01:00:00 DefMemPerCPU=500 State=UP
CONF
chmod 644 /etc/slurm/slurm.conf

mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
rm -f /run/munge/munged.pid
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged
for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
echo "munged $(cat /run/munge/munged.pid)" >> "$PIDS"
munge -n | unmunge >/dev/null

rm -f /run/slurmctld.pid /run/slurmd.pid
/usr/sbin/slurmctld -i
for _ in $(seq 100); do [ -s /run/slurmctld.pid ] && break; sleep 0.1; done
echo "slurmctld $(cat /run/slurmctld.pid)" >> "$PIDS"
sleep 1
if ! kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
  echo "slurmctld exited at start:" >&2; tail -5 /var/log/slurm/slurmctld.log >&2; exit 1
fi
/usr/sbin/slurmd
for _ in $(seq 100); do [ -s /run/slurmd.pid ] && break; sleep 0.1; done
echo "slurmd $(cat /run/slurmd.pid)" >> "$PIDS"

state=""
for _ in $(seq 120); do
  state=$(timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  echo "node state '$state', expected idle" >&2
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2
  exit 1
fi
cd "$STATE_DIR"
jid=$(sbatch --parsable -o "$STATE_DIR/smoke-%j.out" --wrap 'echo smoke-ok')
for _ in $(seq 60); do
  st=$(timeout 5 squeue -h -j "$jid" --states=all -o %T 2>/dev/null || true)
  [ "$st" = COMPLETED ] && break
  sleep 0.5
done
[ "$st" = COMPLETED ] || { echo "smoke job $jid ended $st" >&2; exit 1; }
say "cluster up: node $NODE idle, $SLURM_CPUS CPUs, $FAKE_GPUS fake GPUs, smoke job $jid completed"
