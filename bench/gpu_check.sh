#!/usr/bin/env bash
# GPU check (a few minutes on one CUDA device): the CUDA path of training (mixed precision from
# train.precision auto: bf16 where the GPU supports it, else fp16 + grad scaler; channels_last) and
# of prediction, on generated Carvana-layout data, with the img/s of both. Tests never need a GPU;
# run this the first time a machine with one is there:   bash bench/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('cuda:', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)"
"$PY" -m pipeline demo-data "$OUT/data" --cars 6 --views 8 --test-cars 2 --size 960x640
cat > "$OUT/gpu.yaml" <<YAML
name: gpu-check
dataset: {layout: carvana, name: gpucheck, root: $OUT/data}
folds: {k: 2, seed: 0}
model: {arch: Unet, encoder: tu-tf_efficientnet_lite0, encoder_weights: null}
augment: {preset: light}
loss: {name: bce_dice}
optim: {name: adamw, lr: 0.001, scheduler: cosine}
train: {resolutions: [[448, 672]], geometry: pad, epochs: 3, batch_size: 8, device: cuda,
        precision: auto, channels_last: true, select: last}
predict: {tta: hflip, device: cuda, precision: auto, batch_size: 8, test_from: folds}
YAML
cd "$OUT"
"$PY" -m pipeline folds gpu.yaml
start=$(date +%s.%N)
"$PY" -m pipeline train gpu.yaml
"$PY" - <<'PYEOF'
import csv, glob
for path in sorted(glob.glob("artifacts/runs/gpu-check_448x672/fold*/history.csv")):
    rows = list(csv.DictReader(open(path)))
    print(f"{path}: train img/s per epoch {[round(float(r['img_per_s']), 1) for r in rows]}, "
          f"val dice {float(rows[-1]['val_dice']):.4f}")
import torch
from pipeline.train import checkpoint
print("checkpoint precision:", checkpoint.load("artifacts/runs/gpu-check_448x672/fold0/model.pt").get("precision"))
PYEOF
t0=$(date +%s.%N)
"$PY" -m pipeline predict gpu.yaml --split test --force
t1=$(date +%s.%N)
n=$(ls "$OUT/data/test" | wc -l)
"$PY" -c "print(f'predict: $n test images x 2 models x hflip in {$t1 - $t0:.1f} s (process start included)'
           f' = {$n / ($t1 - $t0):.1f} img/s')"
echo "gpu check passed in $(python3 -c "print(round($t1 - $start))") s"
