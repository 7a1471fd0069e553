#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one call, for a lent GPU machine.
#
#   scripts/device_check.sh               # on the GPU machine (fits one 10-minute call)
#   scripts/device_check.sh --cpu-smoke   # the same steps at toy sizes on the CPU
#   scripts/device_check.sh --only notebook,bench,all   # some groups of steps (below)
#
# Installs nothing (but the ortgpu group: onnxruntime-gpu into /tmp): runs from the source
# tree (PYTHONPATH) with the machine's torch, onnx, onnxruntime, h5py, typer, rich,
# scikit-learn and matplotlib. Data: the carried CIFAR-10 npz
# and MNIST files in .devdata/ (copy ../shared/data/{cifar10_jpeg_q75.npz,
# make_cifar10_batches.py,mnist/} there and name .devdata in the device call's carry, or its
# files one by one where .devdata/ortgpu holds the wheel's 255 MB of parts); in
# --cpu-smoke mode without them, small synthetic files in the real formats. Steps run most
# wanted first, each cut at its own limit and at the script's deadline. Groups (all by
# default): notebook (the course recipe, cold and warm compile cache), explore (the fast
# recipe and the variants EXPLORE="NAME:OPTIONS|..." names, seed 0, then the best over seeds
# 1 and 2; default: base, w32 (--whiten --epochs 32), muon and muon24 (the narrow end's Muon
# recipe at width 64, muon lr 0.1 and 0.24)), recipes (page over seeds), compare
# (issue 25's verdict: the arms CMP_ARMS="NAME:OPTIONS|..." over CMP_SEEDS seeds, default the
# page control at 20 epochs, the fast recipe (flip TTA, its inference timed) and the fast
# recipe at 10 epochs, 5 seeds each, seeds interleaved so a cut leaves the arms even), bench
# (bench_train.py and its variants), eval (hw0 eval, bench_eval.py; needs notebook), kernels,
# ortgpu (onnxruntime-gpu installed from the parts of scripts/ort_gpu_parts.sh where they are
# here or stashed, then `hw0 eval --flip` with defaults, again from the cache, and with each
# backend / provider, and bench_eval.py on the GPU providers; trains its own short run unless
# notebook ran; a provider that cannot run is a row saying why, not a failure), all (hw0 all).
# Full logs and JSON results go to $OUT (default /tmp/hw0_device_check); a table is printed
# last.
set -uo pipefail

smoke=0
only=""
GROUPS_KNOWN=",notebook,explore,recipes,compare,bench,eval,kernels,ortgpu,all,"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) smoke=1 ;;
    --only)
      only=${2:-}; only=${only// /}
      groups_text="groups:${GROUPS_KNOWN//,/ }"
      [[ ",$only," == *,,* ]] && {  # empty, or an empty item
        echo "device_check.sh: --only needs comma-separated groups, got '$only' ($groups_text)" >&2
        exit 2; }
      for g in ${only//,/ }; do
        [[ "$GROUPS_KNOWN" == *",$g,"* ]] || {
          echo "device_check.sh: unknown group '$g' in --only ($groups_text)" >&2; exit 2; }
      done
      shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "device_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
repo=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/hw0_device_check}
mkdir -p "$OUT"
work=$(mktemp -d)
# .devdata/pylib: only the pure-Python packages hw0 needs that the device image lacks (they
# come before the image's site-packages) (annotated_types:
# cp -r "$(python -c 'import annotated_types as a, os; print(os.path.dirname(a.__file__))')"
# .devdata/pylib/)
pylib="$repo/.devdata/pylib"
[ -d "$pylib" ] || pylib=""
export PYTHONPATH="$repo${pylib:+:$pylib}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
HW0="$PY -m hw0cli"
data="$work/data"
art="$work/artifacts"
failures=0

step() {  # step NAME LIMIT_S CMD...: run (cut at LIMIT_S and at the deadline), log to
          # $OUT/NAME.log, count failures; skipped outside the chosen groups ($group) and
          # when under 20 s of the budget is left
  local name=$1 limit=$2; shift 2
  rm -f "$OUT/$name.log" "$OUT/$name.json"  # never a stale result from an earlier check
  want "$group" || return 1
  limit=$(( limit * SLACK ))
  local left=$(( deadline - SECONDS ))
  if [ "$left" -lt 20 ]; then echo "== $name: skipped (budget spent)"; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (<= $limit s): $*"
  local t0=$SECONDS
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    echo "   ok ($(( SECONDS - t0 )) s)"
  else
    echo "   FAILED or cut ($(( SECONDS - t0 )) s), tail of $OUT/$name.log:"
    tail -5 "$OUT/$name.log"
    failures=$(( failures + 1 ))
    return 1
  fi
}

train() {  # train NAME LIMIT_S [hw0 train options]: a training step; its JSON result kept
  local name=$1 limit=$2; shift 2
  step "$name" "$limit" $HW0 train "$@" $common $FALLBACK
  local rc=$?
  grep -h '^{' "$OUT/$name.log" > "$OUT/$name.json" 2>/dev/null || rm -f "$OUT/$name.json"
  return $rc
}

if [ "$smoke" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""
  # eager: the smoke checks the script's steps and table, not the compiler (the test suite
  # compiles the whole step on the CPU)
  W=4; EPOCHS=1; TRAIN="--train-samples 1000 --no-compile --precision fp32"
  BENCH="--batches 3 --compile off --precision fp32"; VARIANTS="fp32/eager"; KSIZES=200
  KEXTRA=""; DEV="--device cpu"; EEXTRA=""; SEEDS="0 1"; ALL_PRESET=quick
  CMP_SEEDS=${CMP_SEEDS:-"0 1"}; CEPOCHS="--epochs 1"
  ALL_CAP=10; COLD=300; WARM=120; XEPOCHS="--epochs 1"; ORT_EPOCHS=1
  # the smoke checks that every step runs, not how fast: on a CPU shared with other work a
  # step may take many times its GPU-sized limit, so limits and budget are only hang guards
  SLACK=10; BUDGET=${BUDGET:-5400}
else
  W=64; EPOCHS=20; TRAIN=""; BENCH="--batches 0 --epochs 2"; KSIZES=60000; KEXTRA="--no-sklearn"
  VARIANTS="bf16/eager,bf16/default,fp32/reduce-overhead"
  DEV="--device cuda"; SEEDS="0 1 2"; BUDGET=${BUDGET:-555}; ALL_PRESET=full; ALL_CAP=300
  CMP_SEEDS=${CMP_SEEDS:-"0 1 2 3 4"}; CEPOCHS=""
  SLACK=1
  COLD=200; WARM=75; XEPOCHS=""  # the fast recipe at its own length
  ORT_EPOCHS=5  # ortgpu's own run (eager): trained enough that top-1 agreement means something
  EEXTRA="--no-int8"  # an int8 TensorRT engine build is not worth this call's minutes
fi
FALLBACK=""  # becomes --no-compile when the first compiled run fails: accuracy still measured
deadline=$(( SECONDS + BUDGET ))  # the whole script fits one device call
export HW0_CACHE="$work/cache"  # cold: the first run pays every one-time cost

table() {  # the table of every measured point; printed on exit, even after a cut
$PY - "$OUT" <<'EOF' | tee "$OUT/table.txt"
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
def load_text(name):
    try:
        return (out / name).read_text()
    except OSError:
        return None
rows = []
def train_row(label, r):
    rows.append((r["device"], f"{label}: test acc (TTA) / steady train s / one-time s",
                 f"{100 * (1 - r['test_err']):.2f}%"
                 + (f" ({100 * (1 - r['test_err_tta']):.2f}%)" if r.get("test_err_tta") else "")
                 + f" / {r['seconds']:.1f} s ({r['images_per_s']:,.0f} img/s) / "
                 f"{r['one_time_s']:.1f} s", f"{r['precision']}, {r.get('compile_mode')}", ""))
for name, label in (("train_notebook_s0.json", "notebook recipe, cold cache"),
                    ("train_notebookwarm_s0.json", "notebook recipe, warm cache")):
    if load(name):
        train_row(label, load(name))
groups = {}
for p in sorted(out.glob("train_*_s*.json")):
    r = load(p.name)
    if r and not p.name.startswith("train_notebook"):
        groups.setdefault(p.name[len("train_"):].rsplit("_s", 1)[0], []).append(r)
explored = dict(line.split(":", 1) for line in
                (load_text("explore.txt") or "").splitlines() if ":" in line)
arms = dict(line.split(":", 1) for line in
            (load_text("compare.txt") or "").splitlines() if ":" in line)
for group, rs in groups.items():
    name = group.removeprefix("x-").removeprefix("cmp-")
    label = (f"fast recipe {explored.get(name, name) or '(as committed)'}".rstrip()
             + f", {rs[0]['epochs_done']} epochs" if group.startswith("x-")
             else f"compare {name} ({arms.get(name, '?').strip()})" if group.startswith("cmp-")
             else f"{group} recipe, {rs[0]['epochs_done']} epochs")
    for r in rs:
        train_row(f"{label} seed {r['run_id'].split('-s')[-1].split('-')[0]}", r)
    if len(rs) > 1:
        accs = [100 * (1 - r["test_err"]) for r in rs]
        secs = [r["seconds"] for r in rs]
        rows.append((rs[0]["device"], f"{label} over {len(rs)} seeds: mean / min acc, "
                     "mean steady s", f"{statistics.mean(accs):.2f}% / {min(accs):.2f}%, "
                     f"{statistics.mean(secs):.1f} s", "", ""))
def spread(xs):
    return (f"{statistics.mean(xs):.2f} +- {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"
            f" (n={len(xs)})")
def acc(r, tta=False):
    err = r["test_err_tta"] if tta and r.get("test_err_tta") is not None else r["test_err"]
    return 100 * (1 - err)
cmp = {g.removeprefix("cmp-"): rs for g, rs in groups.items() if g.startswith("cmp-")}
if "page" in cmp:  # issue 25's targets: fast (TTA, timed) >= page + 2.5 points in <= 10 s
    dev, page = cmp["page"][0]["device"], statistics.mean(acc(r) for r in cmp["page"])
    rows.append((dev, "compare: page control, test acc %", spread([acc(r) for r in cmp["page"]]),
                 "", ""))
    for arm, rs in cmp.items():
        if arm == "page":
            continue
        tta = [acc(r, True) for r in rs]
        secs = [r["seconds"] + (r.get("tta_inference_s") or 0) for r in rs]
        gap = statistics.mean(tta) - page
        rows.append((dev, f"compare: {arm}, {rs[0]['epochs_done']} epochs: test acc % plain / "
                     "with TTA / s (TTA counted)", f"{spread([acc(r) for r in rs])} / "
                     f"{spread(tta)} / {statistics.mean(secs):.1f} s", f"page {page:.2f}%",
                     f"{gap:+.2f} points"))
        rows.append((dev, f"compare: {arm}: TTA mean >= page + 2.5 in <= 10 s; plain mean >= "
                     "page", f"{'yes' if gap >= 2.5 and statistics.mean(secs) <= 10 else 'no'}"
                     f"; {'yes' if statistics.mean(acc(r) for r in rs) >= page else 'no'}",
                     "", ""))
for b in (load("bench_train.json"), load("bench_variants.json")):
    if not b:
        continue
    busy = f", GPU busy {b['gpu_busy_share']:.0%}" if b.get("gpu_busy_share") else ""
    rows.append((b["device"], f"train images/s, width {b['width']}, {b['window']}",
                 f"{b['ours_images_per_s']:,.0f} ({b['ours_precision']}{busy})",
                 f"{b['notebook_images_per_s']:,.0f}", f"{b['ratio']:.2f}x"))
    for v, r in (b.get("variants") or {}).items():
        rows.append((b["device"], f"train images/s, variant {v} (one-time s)",
                     f"{r['images_per_s']:,.0f} ({r['one_time_s']:.1f} s)",
                     f"{b['notebook_images_per_s']:,.0f}", f"{r['ratio']:.2f}x"))
evals = [("eval_default.json", "hw0 eval --flip (defaults)"),
         ("eval_torch.json", "hw0 eval --flip --backend torch")]
evals += [(f"eval_ort_{k}.json", f"ortgpu: hw0 eval --flip {v}") for k, v in (
    ("default", "(defaults; onnxruntime-gpu installed)"), ("cached", "(defaults, again)"),
    ("torch", "--backend torch"), ("cuda", "--backend onnxruntime --provider cuda"),
    ("cuda_fp16", "--provider cuda --model fp16"),
    ("tensorrt", "--backend onnxruntime --provider tensorrt"),
    ("cpu", "--backend onnxruntime --provider cpu"))]
for name, label in evals:
    r = load(name)
    if r:
        rows.append(("", f"{label}: images/s", f"{r['images_per_s']:,.0f}",
                     f"{r['backend']} ({r['provider']})", ""))
        if r.get("backend_choice"):
            rows.append(("", f"  why: {r['backend_reason']}", "", "", ""))
    elif load_text(name.replace(".json", ".log")):
        tail = load_text(name.replace(".json", ".log")).strip().splitlines()[-1:] or [""]
        rows.append(("", f"{label}: did not run", tail[0][:150], "", ""))
for bench, tag in (("bench_eval.json", ""), ("bench_eval_ortgpu.json", "ortgpu: ")):
    e = load(bench)
    if not e:
        continue
    res = e["results"]
    base = res["torch eager fp32"]["images_per_s"]
    for k, v in res.items():
        rows.append((e["device"], f"{tag}flip eval 20k images/s: {k}",
                     f"{v['images_per_s']:,.0f}", f"{base:,.0f} (eager)",
                     f"{v['images_per_s'] / base:.2f}x"))
    for k, why in (e.get("skipped") or {}).items():
        rows.append((e["device"], f"{tag}flip eval 20k images/s: {k}", "skipped", why[:150],
                     ""))
k = load("bench_kernels.json")
if k:
    for r in k["rows"]:
        base = f"{r['sklearn_s']:.2f} s" if "sklearn_s" in r else "-"
        rows.append((k["device"], f"Gaussian KRR n={r['n']}: s, test MSE, acc",
                     f"{r['ours_s']:.2f} s, {r['ours_test_mse']:.4f}, "
                     f"{100 * r['ours_test_acc']:.2f}%", base,
                     f"{r['speedup']:.2f}x" if "speedup" in r else ""))
a = load("hw0_all.json")
if a:
    cut = " (cut short at the deadline)" if a["rc"] == 124 else ""
    rows.append(("", f"hw0 all --preset {a['preset']}: wall from a cold process",
                 f"{a['seconds']} s{cut}", "", ""))
head = ("device", "metric", "ours", "baseline", "ratio")
w = [max(len(str(r[i])) for r in [*rows, head]) for i in range(5)]
for r in [head, *rows]:
    print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
EOF
}
finish() { table; rm -rf "$work"; echo "device_check.sh: $failures failed step(s); logs in $OUT"; }
trap finish EXIT
trap 'exit 124' TERM INT

# 1. environment
group=always; only=${only:+$only,always}
step env 60 $PY - <<'EOF'
import os, platform, torch, onnxruntime as ort, numpy, sklearn
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
print("cuda available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
print("numpy", numpy.__version__, "scikit-learn", sklearn.__version__, "cpus", os.cpu_count())
EOF
cat "$OUT/env.log"
# hw0 itself must import, or every step would fail the same way (the first device call of
# session 5 lost its minutes to a missing annotated_types)
if ! step imports 60 $PY -c "import hw0cli.cli, hw0cli.train, hw0cli.linreg"; then
  echo "device_check.sh: hw0 does not import here (see $OUT/imports.log); a pure-Python" \
    "package the image lacks goes into .devdata/pylib (see the header)" >&2
  exit 2
fi
command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT/nvidia-smi.log" 2>&1

# 2. data
if [ -f "$repo/.devdata/cifar10_jpeg_q75.npz" ]; then
  step data_cifar 120 $PY "$repo/.devdata/make_cifar10_batches.py" "$data"
  mkdir -p "$data/MNIST/raw" && cp "$repo"/.devdata/mnist/* "$data/MNIST/raw/" 2>/dev/null
elif [ "$smoke" = 1 ]; then
  step data_synthetic 120 $PY -c "
from pathlib import Path
from tests.helpers import write_cifar, write_mnist
write_cifar(Path('$data'), n_per_batch=200, n_test=500); write_mnist(Path('$data'), 600, 300)"
else
  echo "device_check.sh: no .devdata/cifar10_jpeg_q75.npz (see the header)" >&2; exit 2
fi

# 3. training, most wanted first: the course recipe with an empty compile cache; the fast recipe
#    at its own length (10 s of steady training on an H100) and variants of it ($EXPLORE:
#    NAME:OPTIONS items joined by '|'), seed 0 each, then seeds 1 and 2 of the best of them;
#    the page recipe over the seeds (the data penalty); the course recipe again with a warm
#    cache; the benchmark against the notebook's loop; the trainer's other executions
common="--width $W $TRAIN $DEV --data-dir $data --out $art --json --quiet"
group=notebook
if want notebook; then
  train train_notebook_s0 "$COLD" --epochs $EPOCHS || FALLBACK="--no-compile"
fi
group=explore
# the open questions for the fast recipe at width 64: within 10 s, are 32 epochs with the
# cheaper whitened first layer (H100, session 6: 88.85% over 3 seeds, 9.8 s) better than 30
# plain ones (9.6 s)? Does the narrow end's recipe (width <= 16: Muon for the filters, GELU,
# BatchNorm's shifts alone trained at 8x the lr; on the CPU at width 16 and 10 epochs +0.9
# points over SGD, +1.1 with flip TTA) help here too, at its muon lr 0.1 or airbench's 0.24?
NARROW="--optimizer muon --warmup 0.02 --activation gelu --freeze-bn-scale --bn-bias-lr 8"
EXPLORE=${EXPLORE:-"base:|w32:--whiten --epochs 32|muon:$NARROW --muon-lr 0.1|\
muon24:$NARROW --muon-lr 0.24"}
IFS='|' read -ra variants <<< "$EXPLORE"
for v in "${variants[@]}"; do  # NAME:OPTIONS lines accumulate over calls (the table's labels)
  name=${v%%:*}; opts=${v#*:}
  want explore && echo "$name:$opts" >> "$OUT/explore.txt"
  # shellcheck disable=SC2086  # options split on purpose
  # $XEPOCHS last: in --cpu-smoke it overrides a variant's own --epochs
  train "train_x-${name}_s0" "$COLD" --recipe fast $opts $XEPOCHS
done
# the variant with the lowest seed-0 test error among those of this call that finished
best=$($PY - "$OUT" "${variants[@]}" <<'EOF' 2>/dev/null
import json, sys
from pathlib import Path
errs = {}
for v in sys.argv[2:]:
    try:
        r = json.loads((Path(sys.argv[1]) / f"train_x-{v.split(':', 1)[0]}_s0.json").read_text())
        errs[v] = r["test_err"]
    except (OSError, ValueError, KeyError):
        pass
print(min(errs, key=errs.get) if errs else "")
EOF
)
if [ -n "$best" ]; then
  name=${best%%:*}; opts=${best#*:}
  echo "== best variant of the fast recipe at seed 0: $name ($opts); seeds 1 and 2"
  for s in $SEEDS; do
    # shellcheck disable=SC2086
    [ "$s" = 0 ] || train "train_x-${name}_s$s" "$WARM" --recipe fast $opts $XEPOCHS --seed "$s"
  done
elif want explore; then
  echo "== no variant of the fast recipe finished at seed 0: no seeds 1 and 2"
fi
group=recipes
for s in $SEEDS; do
  train "train_page_s$s" "$COLD" --recipe page --epochs $EPOCHS --seed "$s"
done
group=compare
CMP_ARMS=${CMP_ARMS:-"page:--recipe page --epochs 20|fast:--recipe fast|\
fast10:--recipe fast --epochs 10"}
IFS='|' read -ra arms <<< "$CMP_ARMS"
want compare && rm -f "$OUT/compare.txt"
for a in "${arms[@]}"; do want compare && echo "$a" >> "$OUT/compare.txt"; done
for s in $CMP_SEEDS; do
  for a in "${arms[@]}"; do
    # shellcheck disable=SC2086  # options split on purpose; $CEPOCHS (smoke) overrides
    train "train_cmp-${a%%:*}_s$s" "$COLD" ${a#*:} $CEPOCHS --seed "$s"
  done
done
group=notebook
train train_notebookwarm_s0 "$WARM" --epochs $EPOCHS --force
group=bench
step bench_train 90 $PY "$repo/scripts/bench_train.py" --data-dir "$data" --width $W $BENCH \
  $DEV --json "$OUT/bench_train.json"

# 4. Problem 1 on the device: export + flip evaluation, each backend
group=eval
run=$($PY -c "import json; print(json.load(open('$OUT/train_notebook_s0.json'))['run_id'])" \
  2>/dev/null)
if [ -n "$run" ]; then
  step eval_default 90 $HW0 eval "$run" --flip --out "$art" --data-dir "$data" --json --no-plot
  step eval_torch 90 $HW0 eval "$run" --flip --backend torch $DEV --out "$art" \
    --data-dir "$data" --json --no-plot
  for f in eval_default eval_torch; do grep -h '^{' "$OUT/$f.log" > "$OUT/$f.json" 2>/dev/null; done
fi

# 5. the other benchmarks
group=kernels
step bench_kernels 90 $PY "$repo/scripts/bench_kernels.py" --data-dir "$data" --sizes $KSIZES \
  $KEXTRA $DEV --json "$OUT/bench_kernels.json"
group=eval
step bench_eval 90 $PY "$repo/scripts/bench_eval.py" --data-dir "$data" --width $W $DEV \
  $EEXTRA --json "$OUT/bench_eval.json"

group=bench
step bench_variants 150 $PY "$repo/scripts/bench_train.py" --data-dir "$data" --width $W \
  $BENCH --variants "$VARIANTS" $DEV --json "$OUT/bench_variants.json"

# 6. onnxruntime-gpu (installed from the parts where they are) against torch, every backend
group=ortgpu
ort_eval() {  # ort_eval NAME [hw0 eval options]: an eval of $run, its JSON kept; its failure
  # is a finding (a provider that cannot run: the table's row says why), not a fault
  local name=$1 before=$failures; shift
  step "eval_ort_$name" 120 $HW0 eval "$run" --flip --out "$art" --data-dir "$data" --json \
    --no-plot "$@"
  failures=$before
  grep -h '^{' "$OUT/eval_ort_$name.log" > "$OUT/eval_ort_$name.json" 2>/dev/null ||
    rm -f "$OUT/eval_ort_$name.json"
}
if want ortgpu; then
  ORT_TARGET=${ORT_TARGET:-/tmp/hw0_ortgpu/site}
  stashed=${ORTGPU_STASH:-/tmp/hw0_ortgpu}/manifest.sha256
  if [ "$smoke" = 1 ]; then  # the wheel is for the GPU image's Python (3.12), not this one
    echo "== ortgpu: --cpu-smoke installs no onnxruntime-gpu: the machine's onnxruntime"
  elif [ -f "$repo/.devdata/ortgpu/manifest.sha256" ] || [ -f "$stashed" ]; then
    step ortgpu_install 180 bash "$repo/scripts/ort_gpu_parts.sh" install "$ORT_TARGET" &&
      export PYTHONPATH="$ORT_TARGET:$PYTHONPATH"
  else
    echo "== ortgpu: no onnxruntime-gpu parts here or stashed: the image's onnxruntime"
  fi
  step ortgpu_providers 60 $PY -c "import onnxruntime as o; print(o.__version__, o.__file__, \
o.get_available_providers())" && cat "$OUT/ortgpu_providers.log"
  run=$($PY -c "import json; print(json.load(open('$OUT/train_notebook_s0.json'))['run_id'])" \
    2>/dev/null)
  if [ -z "$run" ] && train train_ortgpu "$COLD" --epochs $ORT_EPOCHS --no-compile; then
    run=$($PY -c "import json; print(json.load(open('$OUT/train_ortgpu.json'))['run_id'])")
  fi
  if [ -n "$run" ]; then
    ort_eval default  # measures on a GPU: its table row says what and why
    ort_eval cached
    ort_eval torch --backend torch $DEV
    ort_eval cuda --backend onnxruntime --provider cuda
    ort_eval cuda_fp16 --backend onnxruntime --provider cuda --model fp16
    ort_eval tensorrt --backend onnxruntime --provider tensorrt
    ort_eval cpu --backend onnxruntime --provider cpu
  fi
  step bench_eval_ortgpu 150 $PY "$repo/scripts/bench_eval.py" --data-dir "$data" --width $W \
    $DEV --no-int8 --json "$OUT/bench_eval_ortgpu.json"
fi

# 7. `hw0 all` wall-clock from a cold process, last, cut at the deadline (the table still prints)
rm -f "$OUT/hw0_all.json" "$OUT/hw0_all.log"
left=$(( deadline - SECONDS )); cap=$(( left < ALL_CAP ? left : ALL_CAP ))
if [ "$cap" -gt 5 ] && want all; then
  echo "== hw0_all: hw0 all --preset $ALL_PRESET (cut after $cap s)"
  t0=$SECONDS
  timeout "$cap" $HW0 all --preset $ALL_PRESET $DEV --data-dir "$data" --out "$work/all" \
    > "$OUT/hw0_all.log" 2>&1
  rc=$?
  echo "{\"seconds\": $(( SECONDS - t0 )), \"rc\": $rc, \"cap\": $cap, \"preset\": \"$ALL_PRESET\"}" \
    > "$OUT/hw0_all.json"
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then failures=$(( failures + 1 )); fi
  echo "   rc $rc ($(( SECONDS - t0 )) s; 124 = cut short at the deadline)"
fi
[ "$failures" = 0 ]
