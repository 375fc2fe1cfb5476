#!/usr/bin/env bash
# The test command: installs what the tests need (.venv, SAM CLI in .sam-venv), lints, builds the docs site
# (docs/, mkdocs.yml) with --strict, runs pytest, then the torch-free tests again on the onnx image's Python 3.12
# (scripts/test-onnx.sh, its own .venv-onnx).
# Extra arguments go to the first pytest run, e.g. `bash scripts/test.sh -k engine`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything the tests and the libraries they drive write to $TMPDIR (pytest's tmp_path, ONNX Runtime's and
# torch's scratch files, the local sandboxes) goes into one directory of this run, removed on exit, pass or fail.
RUN_TMP="$(mktemp -d "${TMPDIR:-/tmp}/qa-tests.XXXXXX")"
trap 'rm -rf "$RUN_TMP"' EXIT
export TMPDIR="$RUN_TMP"
bash scripts/setup.sh
bash scripts/install-sam.sh
bash scripts/install-emulators.sh # qemu-user-static + debootstrap for tests/emulation (marker: emulation)
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> the docs site (mkdocs build --strict: a broken link or anchor fails)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$RUN_TMP/site"  # removed with the run's
echo "==> pytest on $(.venv/bin/python --version) (.venv)"
.venv/bin/python -m pytest --basetemp="$RUN_TMP/pytest" "$@"
echo "==> the onnx image's tests on its Python (scripts/test-onnx.sh)"
bash scripts/test-onnx.sh --basetemp="$RUN_TMP/pytest-onnx"
