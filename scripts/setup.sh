#!/usr/bin/env bash
# Creates .venv with everything the project needs for development, tests and the local demo.
# pip runs only when a requirements file changed since the last successful install (a stamp in .venv).
# torch is pinned in requirements-torch.txt; Linux users who want the small CPU-only wheel can run
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp_file=.venv/.requirements-stamp
stamp="$(cat requirements*.txt | cksum)"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  echo "==> .venv is up to date with requirements*.txt"
  exit 0
fi
echo "==> installing requirements-dev.txt into .venv (the first time takes a few minutes: torch, transformers, ...)"
rm -f "$stamp_file"
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt \
  | { grep -v '^Requirement already satisfied' || true; }
echo "$stamp" > "$stamp_file"
echo "==> .venv ready"
