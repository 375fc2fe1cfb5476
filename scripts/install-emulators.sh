#!/usr/bin/env bash
# The emulators the tests/emulation checks need: qemu-user-static (an emulated Graviton2 and an AVX2-only
# Haswell) and debootstrap (an arm64 Debian root). Idempotent and quick when both are present: apt-get update
# runs once, only when something is missing. Needs root (or sudo) and Debian's package mirror; when neither is
# available it says so and returns 0: the tests then fail under CI=true and skip locally, naming what is missing.
set -euo pipefail
need=()
{ command -v qemu-aarch64-static && command -v qemu-x86_64-static; } >/dev/null 2>&1 || need+=(qemu-user-static)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${#need[@]}" -eq 0 ]; then
  echo "==> emulators present: $(qemu-aarch64-static --version | head -1), debootstrap"
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo "warning: ${need[*]} missing and no root to install them: the emulation tests will say so" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: ${need[*]} missing and no apt-get: install them by hand (the emulation tests will say so)" >&2
  exit 0
fi
echo "==> installing ${need[*]} (apt-get)"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "==> emulators installed: $(qemu-aarch64-static --version | head -1), debootstrap"
