#!/usr/bin/env bash
# The Problem 2 grid (widths x label noise), or any sweep, in plain bash, on top of
# `hw0 grid list` (`hw0 sweep list` with --sweep).
#
#   scripts/grid.sh [-j N] [--dry-run] [--sweep] [hw0 grid/sweep/train options...]
#   scripts/grid.sh -j 2 --train-samples 2000          # a CPU-sized grid, 2 processes
#   scripts/grid.sh --widths 4,64 --noise 0,0.5,1       # the assignment grid, one job per GPU
#   scripts/grid.sh -j 2 --sweep --preset bn-study      # a sweep: the warm-up's BatchNorm study
#
# Lanes pull cells from a shared queue (last first: the grid's widest, so they start early); each
# lane runs one cell at a time. On a GPU machine there is one lane per visible GPU
# (CUDA_VISIBLE_DEVICES set per lane, -j ignored);
# on a CPU machine, -j N lanes share the cores (OMP_NUM_THREADS = cores / N). Every cell is an
# idempotent `hw0 train`: killing this script and starting it again finishes what is missing
# (interrupted cells resume from their last epoch) and skips finished cells.
set -euo pipefail

jobs=1
dry=0
kind=grid
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs="$2"; shift 2 ;;
    -j*) jobs="${1#-j}"; shift ;;
    --dry-run) dry=1; shift ;;
    --sweep) kind=sweep; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
HW0=${HW0:-hw0}

# NUL-separated: a command whose folder name holds a newline stays one command; each is
# shell-quoted by hw0, so eval below runs exactly it, whatever the paths hold
mapfile -d '' -t cmds < <($HW0 $kind list --null "${args[@]+"${args[@]}"}")
[ "${#cmds[@]}" -gt 0 ] || { echo "grid.sh: the $kind is empty" >&2; exit 2; }

gpus=()
if [ -n "${CUDA_VISIBLE_DEVICES-}" ]; then
  IFS=',' read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi > /dev/null 2>&1; then
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
fi
lanes=$jobs
if [ "${#gpus[@]}" -gt 0 ]; then lanes=${#gpus[@]}; fi
[ "$lanes" -ge 1 ] || lanes=1
threads=$(( $(nproc) / lanes )); [ "$threads" -ge 1 ] || threads=1

echo "grid.sh: ${#cmds[@]} cells in $lanes lane(s)${gpus:+ on GPUs ${gpus[*]}}"
if [ "$dry" = 1 ]; then
  for (( i = ${#cmds[@]} - 1; i >= 0; i-- )); do echo "cell $i: ${cmds[$i]}"; done
  exit 0
fi

queue=$(mktemp)
echo $(( ${#cmds[@]} - 1 )) > "$queue"   # next cell to hand out, counting down
next_cell() {  # prints the next index, or nothing when the queue is empty
  exec 9<>"$queue.lock"
  flock 9
  local i; i=$(cat "$queue")
  if [ "$i" -ge 0 ]; then echo $(( i - 1 )) > "$queue"; echo "$i"; fi
  flock -u 9
}

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; rm -f "$queue" "$queue.lock"; exit 130' INT TERM
for lane in $(seq 0 $(( lanes - 1 ))); do
  (
    if [ "${#gpus[@]}" -gt 0 ]; then export CUDA_VISIBLE_DEVICES="${gpus[$lane]}"
    else export OMP_NUM_THREADS="$threads"; fi
    rc=0
    while i=$(next_cell) && [ -n "$i" ]; do
      echo "[lane $lane] cell $i: ${cmds[$i]}"
      if [ "$kind" = sweep ]; then  # a diverged cell is a result of a sweep, not a failure
        $HW0 sweep run --index "$i" "${args[@]+"${args[@]}"}" \
          || { echo "[lane $lane] cell $i failed" >&2; rc=1; }
      else
        eval "${cmds[$i]/#hw0 /$HW0 } --quiet" || { echo "[lane $lane] cell $i failed" >&2; rc=1; }
      fi
    done
    exit $rc
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
rm -f "$queue" "$queue.lock"
$HW0 $kind status "${args[@]+"${args[@]}"}" || true
exit $status
