#!/usr/bin/env bash
# Create teacher/.venv and install teacher/requirements.txt into it (pip only; wheels come from the index
# pip is configured with, e.g. the local mirror). Idempotent: an existing venv with the pins is reused.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
if "$venv/bin/python" -c "import torch, torchvision, timm, onnx, onnxruntime, yaml, PIL, pytest, skimage" 2>/dev/null \
   && [ "$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')" = "2.14.1" ]; then
  echo "teacher/.venv ready"
  exit 0
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -r "$here/requirements.txt"
echo "teacher/.venv ready"
