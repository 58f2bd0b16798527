#!/usr/bin/env bash
# The GPU measurements, on a CUDA machine where this package and its dependencies are installed
# (`pip install .`). First zero-shot -> SFT -> GRPO of the default model with
# gpu_default_model.yaml next to SASRec (2 epochs, as in the CPU tables) on ml-100k uni9, every
# user evaluated: the evidence the CPU cannot give, so it runs first. Then training throughput
# with the main command's settings (compare it with the CPU's benchmarks/results/training.md).
# Writes benchmarks/results/compare_uni9_gpu/ and benchmarks/results/training_gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'No CUDA device: these are the GPU benchmarks.')"
"$PYTHON" benchmarks/bench_compare.py --reduced --modes uni9 --models SASRec,mllmrecr1-hybrid-fusion-sft,mllmrecr1-hybrid-fusion-sft-grpo \
  --eval-user-sample 0 --tag gpu --mllmrecr1-config properties/quick_start_config/gpu_default_model.yaml
"$PYTHON" benchmarks/bench_training.py --steps 8 --out training_gpu.md
