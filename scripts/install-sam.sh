#!/usr/bin/env bash
# Install AWS SAM CLI into its own virtual environment (.sam-venv/ in the repo root).
# Why a separate venv: aws-sam-cli pins an older click than huggingface-hub/transformers accept, so it
# cannot share the project's environment. Idempotent: re-running with the pinned version installed is a no-op.
set -euo pipefail

SAM_VERSION="1.170.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SAM_VENV:-$ROOT/.sam-venv}"
PYTHON="${PYTHON:-python3}"
export SAM_CLI_TELEMETRY=0

installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("aws-sam-cli"))' \
  2>/dev/null || true)"
if [[ -x "$VENV/bin/sam" && "$installed" == "$SAM_VERSION" ]]; then
  echo "aws-sam-cli $SAM_VERSION already installed in $VENV"
  exit 0
fi

echo "==> installing aws-sam-cli $SAM_VERSION into $VENV (the first time takes a minute or two)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on \
  "aws-sam-cli==$SAM_VERSION" | { grep -v '^Requirement already satisfied' || true; }
"$VENV/bin/sam" --version
echo "use: SAM_CLI_TELEMETRY=0 $VENV/bin/sam validate --lint"
