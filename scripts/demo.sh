#!/usr/bin/env bash
# The main job: answer a question through the Lambda handler against a local S3 holding a published model.
# Usage: bash scripts/demo.sh [MODEL_DIR_OR_HUB_ID] [--backend torch|onnx] [--question Q --context C]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
