#!/usr/bin/env bash
# The main job: answer a question through the Lambda function against a local S3 holding a published model.
# Usage: bash scripts/demo.sh [MODEL_DIR_OR_HUB_ID] [--backend torch|onnx] [--question Q --context C]
# stdout: the answer JSON only (`> answer.json` works); set-up, progress and the function's logs on stderr.
# Runs from wherever you are: a model path is taken relative to your working directory.
set -euo pipefail
# VENV=DIR runs in an existing virtual environment as it is, without the set-up (e.g. one shared by checkouts).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${VENV:-}" ]]; then
  bash "$ROOT/scripts/setup.sh" >&2
  VENV="$ROOT/.venv"
fi
exec "$VENV/bin/python" "$ROOT/scripts/demo.py" "$@"
