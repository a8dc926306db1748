#!/usr/bin/env bash
# Train the default config on a CUDA machine and record wall time and metrics.
#
# Used on the lent GPU machine (torch/transformers preinstalled there, no network): the bundled
# MiniLM is carried as an fp16 copy in .gpu/minilm (the fp32 safetensors exceed the carry limit;
# training upcasts to fp32) and `datasets` + its pure-Python deps as wheels in .whl/.
#   bash bench/gpu_train.sh "$OUT"
set -euo pipefail
out=${1:?usage: gpu_train.sh OUT_DIR}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers, datasets, pyarrow; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)" | tee -a "$out/gpu.txt"
python3 -m callintent data synth --n 6000 --seed 0 --no-progress
start=$(date +%s)
python3 -m training --config training/configs/default.yaml base_model=.gpu/minilm device=cuda output_dir=/tmp/run 2>&1 | tee "$out/train.log" | grep -v "^ *[0-9]*%|" | tail -40
echo "wall_seconds $(( $(date +%s) - start ))" | tee -a "$out/gpu.txt"
cp /tmp/run/metrics.json "$out/metrics.json"
