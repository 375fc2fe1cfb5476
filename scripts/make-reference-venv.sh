#!/usr/bin/env bash
# Builds .venv-ref/: transformers 4.57 (the last release with the `question-answering` pipeline) on the project's
# torch pin, the reference the benchmarks compare against:
#   .venv/bin/python bench/coldstart.py --seeds-python .venv-ref/bin/python
#   .venv/bin/python bench/pipeline_parity.py ... --reference-python .venv-ref/bin/python
# On Linux, PyPI's torch wheel pulls GBs of CUDA libraries; for the CPU-only wheel, as in scripts/setup.sh:
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/make-reference-venv.sh
# Idempotent: re-running with the right versions installed is a no-op. REF_VENV=DIR builds it elsewhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REF_VENV:-$ROOT/.venv-ref}"
PYTHON="${PYTHON:-python3}"
TRANSFORMERS="transformers==4.57.*"
TORCH="$(grep -E '^torch==' "$ROOT/requirements-torch.txt")"  # the project's one torch pin

probe='import torch, transformers; print(transformers.__version__, torch.__version__.split("+")[0])'
installed="$("$VENV/bin/python" -c "$probe" 2>/dev/null || true)"
if [[ "$installed" == 4.57.*" ${TORCH#torch==}" ]]; then
  echo "==> $VENV already has transformers and torch: $installed"
  exit 0
fi
echo "==> building $VENV: $TRANSFORMERS and $TORCH (the first time takes a few minutes)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on "$TRANSFORMERS" "$TORCH" \
  | { grep -v '^Requirement already satisfied' || true; }
echo "==> $VENV ready: transformers $("$VENV/bin/python" -c 'import transformers; print(transformers.__version__)')"
