#!/usr/bin/env bash
# The onnxruntime-gpu wheel for a lent GPU machine, in parts: a call to that machine carries at
# most 64 MiB (working tree included), the wheel is 255 MB (1.31.1, cp312, manylinux x86_64,
# built for CUDA 13; the GPU image has the CUDA 13 libraries through torch's nvidia-* wheels,
# so only the wheel must travel).
#
#   scripts/ort_gpu_parts.sh prepare [WHEEL]  # here: download (or take WHEEL), split into
#                                             # .devdata/ortgpu/ (55 MiB parts + manifest.sha256)
#   scripts/ort_gpu_parts.sh plan             # the device calls, in order, and what each carries
#   scripts/ort_gpu_parts.sh stash            # device, every call: keep the parts this call
#                                             # carried in $ORTGPU_STASH (checked)
#   scripts/ort_gpu_parts.sh assemble         # cat the parts, check the wheel's sha256
#   scripts/ort_gpu_parts.sh install [TARGET] # assemble, then pip install --no-deps --target
#                                             # TARGET (default $ORTGPU_STASH/site)
#
# Calls (the machine stays warm ~30 s after a call, so issue each call right after the last;
# the first one also starts the machine): with a 255 MB wheel, 5 parts. Calls 1-4 each carry
# one 55 MiB part and the manifest and run `scripts/ort_gpu_parts.sh stash`; call 5 carries the
# last part (24 MiB), the manifest and the data (.devdata/cifar10_jpeg_q75.npz,
# .devdata/make_cifar10_batches.py; .devdata/pylib where the image lacks a package) and runs
# `scripts/device_check.sh --only ortgpu`, which stashes that part, installs the wheel into
# /tmp and measures (`plan` prints these calls with their exact carry lists). /tmp persists
# while the machine is warm; if it went back between calls, start again at call 1.
# Environment: ORTGPU_DIR (.devdata/ortgpu), ORTGPU_STASH (/tmp/hw0_ortgpu), PART_SIZE (55M),
# ORTGPU_VERSION (1.31.1), PYTHON (python3).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${ORTGPU_DIR:-$repo/.devdata/ortgpu}
stash=${ORTGPU_STASH:-/tmp/hw0_ortgpu}
part_size=${PART_SIZE:-55M}
version=${ORTGPU_VERSION:-1.31.1}
PY=${PYTHON:-python3}
manifest=manifest.sha256

die() { echo "ort_gpu_parts.sh: $*" >&2; exit 1; }
wheel_name() {  # the wheel's file name, from the manifest's line for the .whl
  [ -f "$1/$manifest" ] || die "no $manifest in $1: run 'scripts/ort_gpu_parts.sh prepare' here"
  awk '$2 ~ /\.whl$/ {print $2; exit}' "$1/$manifest"
}
parts_of() { awk '$2 ~ /\.part-[a-z]+$/ {print $2}' "$1/$manifest"; }
check() {  # check DIR FILE: FILE's sha256 in DIR is the manifest's
  awk -v n="$2" '$2 == n' "$1/$manifest" | (cd "$1" && sha256sum -c --quiet - > /dev/null 2>&1)
}

prepare() {
  local wheel=${1:-}
  mkdir -p "$dir"
  if [ -z "$wheel" ]; then
    $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
      "onnxruntime-gpu==$version" -d "$dir/download" >&2
    wheel=$(ls "$dir"/download/onnxruntime_gpu-"$version"-*.whl | head -1)
  fi
  [ -f "$wheel" ] || die "no such wheel: $wheel"
  local name
  name=$(basename "$wheel")
  rm -f "$dir/$name".part-* "$dir/$manifest"
  split -b "$part_size" "$wheel" "$dir/$name.part-"
  (cd "$(dirname "$wheel")" && sha256sum "$name") > "$dir/$manifest.tmp"
  (cd "$dir" && sha256sum "$name".part-*) >> "$dir/$manifest.tmp"
  mv "$dir/$manifest.tmp" "$dir/$manifest"
  rm -rf "$dir/download"  # the parts are what travels; the wheel stays out of the tree
  echo "$(parts_of "$dir" | wc -l) parts of $name in $dir"
  plan
}

plan() {  # the device calls, in order: carry lists relative to the repository root
  local rel=${dir#"$repo"/} name parts n i=0
  name=$(wheel_name "$dir")
  mapfile -t parts < <(parts_of "$dir")
  n=${#parts[@]}
  for p in "${parts[@]}"; do
    i=$((i + 1))
    if [ "$i" -lt "$n" ]; then
      echo "call $i/$n: carry [\"$rel/$p\", \"$rel/$manifest\"]; command: scripts/ort_gpu_parts.sh stash"
    else
      echo "call $i/$n: carry [\"$rel/$p\", \"$rel/$manifest\", \".devdata/cifar10_jpeg_q75.npz\"," \
        "\".devdata/make_cifar10_batches.py\"] (and \".devdata/pylib\" if the image needs it);" \
        "command: scripts/device_check.sh --only ortgpu"
    fi
  done
  echo "(each call within ~30 s of the last one's end: the machine keeps $stash while warm)"
}

stash() {  # copy the parts present in $dir into the stash, each checked against the manifest
  local name p n=0
  name=$(wheel_name "$dir")
  mkdir -p "$stash"
  cp "$dir/$manifest" "$stash/$manifest"
  for p in $(parts_of "$dir"); do
    [ -f "$dir/$p" ] || continue
    check "$dir" "$p" || die "part $p arrived damaged (its sha256 differs); carry it again"
    cp "$dir/$p" "$stash/$p.tmp" && mv "$stash/$p.tmp" "$stash/$p"
    n=$((n + 1))
  done
  local have=0 total=0
  for p in $(parts_of "$stash"); do
    total=$((total + 1))
    [ -f "$stash/$p" ] && have=$((have + 1))
  done
  echo "stashed $n part(s) of $name; $have of $total in $stash"
}

assemble() {  # the checked wheel's path on stdout
  stash > /dev/null
  local name p missing=""
  name=$(wheel_name "$stash")
  for p in $(parts_of "$stash"); do
    [ -f "$stash/$p" ] || missing="$missing $p"
  done
  [ -z "$missing" ] || die "parts missing in $stash:$missing (carry them; see 'plan')"
  # shellcheck disable=SC2046  # the parts in manifest order
  cat $(parts_of "$stash" | sed "s|^|$stash/|") > "$stash/$name.tmp"
  mv "$stash/$name.tmp" "$stash/$name"
  check "$stash" "$name" || {
    rm -f "$stash/$name"; die "the reassembled $name does not match its sha256 (a part in" \
      "$stash is damaged: delete the stash and carry the parts again)"; }
  echo "$stash/$name"
}

install() {
  local target=${1:-$stash/site} wheel
  wheel=$(assemble)
  $PY -m pip install --quiet --no-deps --no-index --no-compile --no-cache-dir --upgrade \
    --target "$target" "$wheel" >&2
  echo "installed $(basename "$wheel") into $target; use: export PYTHONPATH=$target:\$PYTHONPATH" >&2
  echo "$target"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  prepare) prepare "$@" ;;
  plan) plan ;;
  stash) stash ;;
  assemble) assemble ;;
  install) install "$@" ;;
  *) sed -n '2,26p' "$0"; [ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2 ;;
esac
