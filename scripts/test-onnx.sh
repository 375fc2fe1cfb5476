#!/usr/bin/env bash
# The tests that must pass on the ONNX image's interpreter: Python 3.12 in a virtualenv (.venv-onnx) holding
# exactly what the onnx image installs (requirements-onnx.lock, hash-checked) plus the test tools
# (requirements-test.txt, held to the lock's versions), and no torch or transformers. Runs the torch-free
# tests: tests/unit and the onnx image's serving path. Idempotent: the venv is reused, and reinstalled only
# when those files change. Extra arguments go to pytest.
# The interpreter: $PYTHON312 if set, else pyenv's 3.12, else python3.12 on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-onnx
LOCK=requirements-onnx.lock
TOOLS=requirements-test.txt
TESTS=(tests/unit tests/integration/test_onnx_image.py)
NOT_IN_IMAGE=(torch transformers)

is_python312() {
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1
}

python=""
for candidate in "${PYTHON312:-}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python python3.12; do
  if [ -n "$candidate" ] && is_python312 "$candidate"; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "error: no Python 3.12 found (the onnx image runs 3.12). Install it (e.g. \`pyenv install 3.12\`)" \
    "or set PYTHON312=/path/to/python3.12." >&2
  exit 1
fi

stamp="$VENV/.installed.sha256"
wanted="$("$python" -c 'import hashlib, sys
print(hashlib.sha256(sys.version.encode() + b"".join(open(f, "rb").read() for f in sys.argv[1:])).hexdigest())' \
  "$LOCK" "$TOOLS")"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  echo "==> $VENV is up to date with $LOCK and $TOOLS"
else
  # From scratch whenever the files change, so nothing the lock no longer lists stays behind.
  echo "==> creating $VENV with $("$python" --version) ($python)"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  echo "==> installing $LOCK into $VENV (what the onnx image installs)"
  "${pip[@]}" --no-deps --require-hashes --only-binary=:all: --requirement="$LOCK"
  echo "==> installing $TOOLS into $VENV, at the versions $LOCK pins"
  sed -nE 's/^([A-Za-z0-9][^ ]*==[^ ]+).*/\1/p' "$LOCK" > "$VENV/lock-pins.txt" # a constraint may hold no hashes
  "${pip[@]}" --requirement="$TOOLS" --constraint="$VENV/lock-pins.txt"
  "$VENV/bin/python" -m pip check
  echo "$wanted" > "$stamp"
fi
for module in "${NOT_IN_IMAGE[@]}"; do
  if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)"; then
    echo "error: $module is installed in $VENV, but the onnx image must run without it:" \
      "something in $LOCK or $TOOLS pulls it in" >&2
    exit 1
  fi
done
echo "==> pytest on $("$VENV/bin/python" --version), without ${NOT_IN_IMAGE[*]}: ${TESTS[*]}"
exec "$VENV/bin/python" -m pytest "${TESTS[@]}" "$@"
