#!/usr/bin/env bash
# Stop what start.sh started: cancel jobs, then stop the recorded daemons (by PID only).
set -uo pipefail
STATE_DIR=${STATE_DIR:-${TMPDIR:-/tmp}/microlib-slurm}
PIDS="$STATE_DIR/pids"
[ -s "$PIDS" ] || exit 0
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
if squeue -h >/dev/null 2>&1; then
  jobs=$(squeue -h -t PD,R,CG -o %i | tr '\n' ' ')
  [ -n "${jobs// /}" ] && scancel $jobs 2>/dev/null
  for _ in $(seq 40); do [ -z "$(squeue -h -t R,CG,PD 2>/dev/null)" ] && break; sleep 0.25; done
fi
tac "$PIDS" | while read -r name pid; do
  alive "$pid" || continue
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
    *munged*|*slurmctld*|*slurmd*) ;;
    *) echo "skip $name ($pid): not ours"; continue ;;
  esac
  kill -TERM "$pid"
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -KILL "$pid"
  echo "[slurm-stop] stopped $name ($pid)"
done
for f in /run/slurmctld.pid /run/slurmd.pid /run/munge/munged.pid; do
  [ -s "$f" ] && ! alive "$(cat "$f")" && rm -f "$f"
done
: > "$PIDS"
