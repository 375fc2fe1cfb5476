#!/usr/bin/env bash
# Creates .venv with everything the project needs for development, tests and the local demo.
# torch is pinned in requirements-torch.txt; Linux users who want the small CPU-only wheel can run
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
echo "==> installing requirements-dev.txt into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
