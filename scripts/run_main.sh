#!/usr/bin/env bash
# Set up (if needed) and run the main job: MLLMRecR1 with the default model on the bundled
# ml-100k, with the laptop-sized settings in properties/quick_start_config/main_cpu.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/run_recbole --model=MLLMRecR1 --dataset=ml-100k \
  --config_files=properties/quick_start_config/main_cpu.yaml "$@"
