#!/usr/bin/env bash
# The GPU path, end to end, on a machine with an NVIDIA GPU and no registry access:
# `jupyter mlplat run templates/torch_gpu.ipynb` on dask-cuda's LocalCUDACluster (the default
# cluster when GPUs and dask-cuda are present), then the same run again (all cached).
# Prepare on a machine with registry access:  bash ../shared/gpu/fetch-wheels.sh <extras>  (.whl/)
# Run from the repository root; results go to $OUT (default /tmp/gpu-out).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
rm -rf /tmp/mlplat; mkdir -p "$OUT" /tmp/mlplat  # a fresh store: the first round is cold
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export MLPLAT_STORE_URL=sqlite:////tmp/mlplat/store.db MLPLAT_ARTIFACTS_URL=/tmp/mlplat/artifacts
export MLPLAT_LOGS_DIR=/tmp/mlplat/logs JUPYTER_DATA_DIR=/tmp/mlplat/jupyter
nvidia-smi -L | tee "$OUT/gpu.txt"
python3 -c "import torch, dask_cuda; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'dask_cuda', dask_cuda.__version__)" | tee -a "$OUT/gpu.txt"
cp templates/torch_gpu.ipynb /tmp/mlplat/
mlplat() { python3 -m jupyter_mlplat.cli.main "$@"; }
for round in cold cached; do
  start=$(date +%s.%N)
  mlplat run /tmp/mlplat/torch_gpu.ipynb --json > "$OUT/run-$round.json" 2> "$OUT/run-$round.err"
  rc=$?
  echo "$round: exit $rc, $(python3 -c "print(round($(date +%s.%N) - $start, 2))") s wall" | tee -a "$OUT/summary.txt"
done
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
for label in ("cold", "cached"):
    run = json.load(open(f"{sys.argv[1]}/run-{label}.json"))
    print(label, run["status"], {s["name"]: (s["status"], round(s["duration"] or 0, 2), s["worker"]) for s in run["steps"]})
    print("  params", run["params"], "metrics", {k: round(v, 4) for k, v in run["metrics"].items()})
PY
# the registry template: gpu: 1 training with device "auto", TorchScript model, verdict
cp templates/torch_classifier.ipynb /tmp/mlplat/
mlplat run /tmp/mlplat/torch_classifier.ipynb --json > "$OUT/run-classifier.json" 2> "$OUT/run-classifier.err"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
run = json.load(open(f"{sys.argv[1]}/run-classifier.json"))
print("classifier", run["status"], "device", run["params"].get("device"),
      {s["name"]: (s["status"], round(s["duration"] or 0, 2)) for s in run["steps"]},
      [(m["model"], m["version"], m["verdict"], m["summary"]) for m in run["models"]])
PY
cat /tmp/mlplat/logs/*/train.log > "$OUT/train.log" 2>/dev/null
tail -5 "$OUT/run-cold.err"
