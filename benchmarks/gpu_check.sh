#!/usr/bin/env bash
# Prepared GPU check (issue 16): one script, under 8 minutes on one GPU, ONE JSON of results.
#
#   benchmarks/gpu_check.sh [--cpu-dry-run] [RESULT.json]
#
# Parts (each under its own time limit; a failing or timed-out part is recorded, never fatal):
#   env          torch / CUDA / GPU description
#   pytest_cuda  the CUDA-marked tests (pytest -m cuda)
#   curvature    benchmarks/gpu_curvature_check.py: operators on CUDA (float32, float64) vs CPU float64
#   train        benchmarks/train_throughput.py: ResNet-20, full CIFAR-10 epoch, GPU-resident data, AMP
#   hvp_peers    benchmarks/hvp.py --peers on the GPU: kdbounds vs PyHessian / curvlinops (random-init
#                ResNet-20, batch 128)
#   certify      experiments/certify_students.py --preset gpu (only if that script and preset exist)
#   nuisance     experiments/nuisance_teacher.py --preset gpu if it exists, else a shortened cpu preset
#                on the GPU
# Output: RESULT.json (default $OUT/gpu_check.json when $OUT is set, else results/gpu_check/gpu_check.json),
# with per-part status, exit code, seconds, the part's own JSON and the tail of its log.
# --cpu-dry-run: every python part on the CPU with tiny settings (a minute or two), to check the
# plumbing on a machine without a GPU. Environment: PY (python), KDBOUNDS_DATA (CIFAR-10; without it
# the training part uses synthetic images), GPU_CHECK_SCALE (multiplies every time limit).

# no `set -e`: one failing part must not stop the others
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PY:-python}
DRY=0
RESULT=""
for arg in "$@"; do
  case "$arg" in
    --cpu-dry-run) DRY=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg (use --cpu-dry-run or a result path)" >&2; exit 2 ;;
    *) RESULT=$arg ;;
  esac
done
if [ -z "$RESULT" ]; then
  if [ -n "${OUT:-}" ]; then RESULT=$OUT/gpu_check.json; else RESULT=results/gpu_check/gpu_check.json; fi
fi
mkdir -p "$(dirname "$RESULT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export KDBOUNDS_CACHE=${KDBOUNDS_CACHE:-$WORK/kdcache}
SCALE=${GPU_CHECK_SCALE:-1}
START=$(date +%s)
: > "$WORK/parts.tsv"

# run_part NAME LIMIT_SECONDS JSON_OR_- COMMAND...
run_part() {
  local name=$1 limit=$2 json=$3
  shift 3
  limit=$(awk -v l="$limit" -v s="$SCALE" 'BEGIN{printf "%d", l*s}')
  echo "== $name (limit ${limit}s): $*"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout --kill-after=15 "$limit" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
    "$json" "$limit" >> "$WORK/parts.tsv"
  echo "   exit $rc"
  tail -n 3 "$WORK/$name.log" | sed 's/^/   | /'
}

skip_part() {  # skip_part NAME REASON
  printf '%s\tskipped\t0\t-\t0\t%s\n' "$1" "$2" >> "$WORK/parts.tsv"
  echo "== $1 skipped: $2"
}

if [ "$DRY" = 1 ]; then DEV=cpu; else DEV=cuda; fi

run_part env 30 "$WORK/env.json" "$PY" - "$WORK/env.json" <<'PYEOF'
import json, platform, subprocess, sys
import torch
info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda, "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=p.total_memory / 2**30, capability=f"{p.major}.{p.minor}",
                bf16=torch.cuda.is_bf16_supported())
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.used,"
                                         "memory.total,utilization.gpu,mig.mode.current",
                                         "--format=csv,noheader"], capture_output=True, text=True,
                                        timeout=20).stdout.strip()
except Exception as e:  # noqa: BLE001
    info["nvidia_smi"] = f"unavailable: {e}"
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(info)
PYEOF

run_part pytest_cuda 45 - "$PY" -m pytest -q -m cuda -p no:cacheprovider tests

if [ "$DRY" = 1 ]; then
  run_part curvature 60 "$WORK/curvature.json" "$PY" benchmarks/gpu_curvature_check.py --cpu-dry-run \
    --batch 16 --json "$WORK/curvature.json"
else
  run_part curvature 45 "$WORK/curvature.json" "$PY" benchmarks/gpu_curvature_check.py --device cuda \
    --json "$WORK/curvature.json"
fi

HAVE_DATA=0
"$PY" -c "from kdbounds.data import load_cifar; load_cifar('cifar10', split='test')" > /dev/null 2>&1 \
  && HAVE_DATA=1
if [ "$DRY" = 1 ]; then
  run_part train 60 "$WORK/train.json" "$PY" benchmarks/train_throughput.py --arch resnet8 \
    --n-per-class 20 --epochs 1 --repeats 1 --device cpu --threads 1 --synthetic --out "$WORK/train.json"
elif [ "$HAVE_DATA" = 1 ]; then
  run_part train 80 "$WORK/train.json" "$PY" benchmarks/train_throughput.py --arch resnet20 \
    --n-per-class 5000 --epochs 2 --repeats 2 --batch-size 128 --device cuda --out "$WORK/train.json"
else
  run_part train 80 "$WORK/train.json" "$PY" benchmarks/train_throughput.py --arch resnet20 \
    --n-per-class 5000 --epochs 2 --repeats 2 --batch-size 128 --device cuda --synthetic \
    --out "$WORK/train.json"
fi

if [ "$DRY" = 1 ]; then
  run_part hvp_peers 300 "$WORK/hvp_peers.json" "$PY" benchmarks/hvp.py --peers --quick --device cpu \
    --threads 1 --json "$WORK/hvp_peers.json"
else
  run_part hvp_peers 120 "$WORK/hvp_peers.json" "$PY" benchmarks/hvp.py --peers --device cuda \
    --batch 128 --block 16 --repeats 5 --eig-seeds 3 --broja-laws 3 --json "$WORK/hvp_peers.json"
fi

has_preset() {  # has_preset SCRIPT NAME: the script's --help lists the preset
  [ -f "$1" ] && "$PY" "$1" --help 2>/dev/null | tr -d '\n' | grep -Eq "\{[^}]*\b$2\b[^}]*\}"
}
if [ -f experiments/certify_students.py ] && has_preset experiments/certify_students.py gpu; then
  if [ "$DRY" = 1 ]; then
    has_preset experiments/certify_students.py smoke \
      && run_part certify 120 - "$PY" experiments/certify_students.py --preset smoke \
           --out "$WORK/certify" \
      || skip_part certify "dry run: no smoke preset"
  else
    run_part certify 80 - "$PY" experiments/certify_students.py --preset gpu --out "$WORK/certify"
  fi
else
  skip_part certify "experiments/certify_students.py or its gpu preset not present"
fi

if [ -f experiments/nuisance_teacher.py ]; then
  if [ "$DRY" = 1 ]; then
    run_part nuisance 120 - "$PY" experiments/nuisance_teacher.py --preset smoke --out "$WORK/nuisance" \
      --cache-root "$WORK/cache" --no-progress
  elif has_preset experiments/nuisance_teacher.py gpu; then
    run_part nuisance 80 - "$PY" experiments/nuisance_teacher.py --preset gpu --out "$WORK/nuisance" \
      --cache-root "$WORK/cache" --no-progress
  else
    run_part nuisance 80 - "$PY" experiments/nuisance_teacher.py --preset cpu --device cuda --seeds 1 \
      --teacher-epochs 10 --epochs 8 --out "$WORK/nuisance" --cache-root "$WORK/cache" --no-progress
  fi
else
  skip_part nuisance "experiments/nuisance_teacher.py not present"
fi

# ---------------------------------------------------------------------------------------------
# one JSON of everything
# ---------------------------------------------------------------------------------------------
"$PY" - "$WORK" "$RESULT" "$DRY" "$START" <<'PYEOF'
import json, os, sys, time
from pathlib import Path
work, result, dry, start = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])
try:
    from kdbounds._io import atomic_write_json
except Exception:  # noqa: BLE001 - the summary must be written whatever else broke
    atomic_write_json = None
parts = {}
for line in (work / "parts.tsv").read_text().splitlines():
    f = line.split("\t")
    name, rc, secs, js, limit = f[:5]
    rec = {"seconds": float(secs), "limit_s": int(limit)}
    if rc == "skipped":
        rec.update(status="skipped", reason=f[5] if len(f) > 5 else "")
    else:
        rc = int(rc)
        rec.update(exit_code=rc, status="ok" if rc == 0 else ("timeout" if rc in (124, 137) else "failed"))
        log = work / f"{name}.log"
        if log.exists():
            rec["log_tail"] = log.read_text(errors="replace")[-3000:]
        if js != "-" and Path(js).exists():
            try:
                rec["result"] = json.loads(Path(js).read_text())
            except ValueError as e:
                rec["result_error"] = f"unreadable JSON: {e}"
    parts[name] = rec

def get(*keys):
    d = parts
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d

headline = {
    "curvature_ok": get("curvature", "result", "ok"),
    "resnet20_epoch_s_trainer": get("train", "result", "seconds_per_epoch_trainer"),
    "train_images_per_s_trainer": get("train", "result", "trainer_images_per_s"),
    "train_images_per_s_bare": get("train", "result", "bare_images_per_s"),
}
for k in ("hvp_over_pyhessian", "hvp_over_curvlinops", "hvp_over_gradient",
          "topeig_matvecs_over_power", "broja_time_over_dit", "hvp_fwdrev_over_pyhessian",
          "hvp_block_over_pyhessian", "topeig_matvecs_over_power_median",
          "topeig_matvecs_over_power_worst", "peak_memory_over_pyhessian",
          "peak_memory_fwdrev_over_pyhessian"):
    headline[k] = get("hvp_peers", "result", k)
for b in ("rev-rev", "fwd-rev"):  # CUDA max_memory_allocated / s per product of each backend (float32)
    headline[f"curvature_peak_mib_{b}"] = get("curvature", "result", "checks", "float32", f"peak_mib_{b}")
    headline[f"curvature_s_per_hvp_block8_{b}"] = get("curvature", "result", "checks", "float32",
                                                      f"s_per_hvp_block8_{b}")
out = {"benchmark": "gpu_check", "cpu_dry_run": dry, "total_seconds": time.time() - start,
       "goals": {"resnet20_epoch_s_trainer_le": 2.0, "hvp_over_pyhessian_le": 0.6,
                 "total_seconds_le": 480},
       "headline": headline,
       "status": {k: v["status"] for k, v in parts.items()}, "parts": parts}
def clean(x):  # strict JSON: nan/inf -> null
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [clean(v) for v in x]
    return x
out = clean(out)
if atomic_write_json is not None:
    atomic_write_json(result, out)
else:
    Path(result).write_text(json.dumps(out, indent=2, allow_nan=False))
print(json.dumps({"result": result, "total_seconds": round(out["total_seconds"], 1),
                  "status": out["status"], "headline": headline}, indent=1))
PYEOF
rc=$?
rm -rf "$WORK/kdcache" "$WORK/cache"
echo "work files in $WORK"
exit $rc
