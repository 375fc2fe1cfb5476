#!/usr/bin/env bash
# Regenerates the image's lock files from the pins in requirements*.txt: every package the image installs,
# pinned, with the sha256 of every file PyPI has for that version, resolved for Python 3.12 on manylinux
# x86_64 and aarch64 (the two resolutions must agree: one lock serves both). Run after changing a pin:
#   bash scripts/lock.sh
#   requirements-onnx.lock  <- requirements-onnx.txt           (the onnx image)
#   requirements.lock       <- requirements.txt without torch  (the torch image; torch itself is pinned in
#                              requirements-torch.txt and comes from PyTorch's CPU index, in its own layer)
# Needs PyPI. uv goes into a throwaway virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
# The Lambda python:3.12 base image is Amazon Linux 2023 (glibc 2.34).
PLATFORMS=(x86_64-manylinux_2_34 aarch64-manylinux_2_34)
INDEX=https://pypi.org/simple

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
echo "==> installing uv $UV_VERSION into a throwaway virtualenv"
"${PYTHON:-python3}" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
uv="$tools/venv/bin/uv"
export UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1

resolve() { # resolve PLATFORM INPUT [uv options...]: pinned names and versions, to stdout
  local platform="$1" input="$2"
  shift 2
  "$uv" pip compile "$input" --quiet --python-version 3.12 --python-platform "$platform" \
    --only-binary :all: --index-url "$INDEX" "$@"
}

lock() { # lock OUTPUT INPUT [uv options...]
  local output="$1" input="$2" platform
  shift 2
  for platform in "${PLATFORMS[@]}"; do
    echo "==> $input for Python 3.12 on $platform"
    resolve "$platform" "$input" --generate-hashes --custom-compile-command "bash scripts/lock.sh" "$@" \
      > "$tools/$platform.lock"
  done
  if ! cmp -s "$tools/${PLATFORMS[0]}.lock" "$tools/${PLATFORMS[1]}.lock"; then
    diff "$tools/${PLATFORMS[0]}.lock" "$tools/${PLATFORMS[1]}.lock" >&2 || true
    echo "error: $input resolves differently on ${PLATFORMS[*]}; one lock cannot serve both" >&2
    exit 1
  fi
  cp "$tools/${PLATFORMS[0]}.lock" "$output"
  echo "==> wrote $output ($(grep -c '^[a-z0-9]' "$output") packages)"
}

lock requirements-onnx.lock requirements-onnx.txt

# PyPI's Linux torch wheels depend on the CUDA stack; the CPU build the image installs does not. Its
# dependencies are those of PyPI's macOS wheel (CPU-only, the same metadata as the CPU index's wheels), so
# whatever the Linux wheel needs on top of them is overridden away.
names() { resolve "$@" --no-header --no-annotate | sed 's/==.*//' | sort -u; }
grep -E '^torch==' requirements-torch.txt > "$tools/torch.in"
MACOSX_DEPLOYMENT_TARGET=14.0 names aarch64-apple-darwin "$tools/torch.in" > "$tools/cpu-deps.txt"
for platform in "${PLATFORMS[@]}"; do names "$platform" "$tools/torch.in"; done | sort -u \
  | comm -23 - "$tools/cpu-deps.txt" | sed 's/$/ ; sys_platform == "never"/' > "$tools/not-cpu.txt"
echo "==> left out, needed by PyPI's CUDA torch only: $(cut -d' ' -f1 "$tools/not-cpu.txt" | xargs)"
lock requirements.lock requirements.txt --overrides "$tools/not-cpu.txt" --no-emit-package torch
echo "==> done; review with: git diff -- '*.lock'"
