"""The image's lock files agree with the pins people edit, and pin every package with its hashes.

requirements*.txt hold the direct pins; `bash scripts/lock.sh` resolves them (Python 3.12, manylinux x86_64 and
aarch64) into the lock files the Dockerfile installs with --require-hashes. A pin changed without re-running
the script would build an image with other versions than the ones tested: this fails instead.
"""

from __future__ import annotations

import re

import pytest

from tests.fixtures import ROOT
from tests.fixtures.requirements import locked, pins

LOCKS = {"requirements-onnx.lock": "requirements-onnx.txt", "requirements.lock": "requirements.txt"}
FROM_ELSEWHERE = {"torch"}  # the torch image installs it from PyTorch's CPU index (requirements-torch.txt)
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_the_lock_has_the_version_of_every_pin(lock: str, source: str) -> None:
    entries = locked(ROOT / lock)
    for name, version in pins(ROOT / source).items():
        if name in FROM_ELSEWHERE:
            assert name not in entries, f"{name} must not come from {lock}"
            continue
        assert name in entries, f"{source} pins {name}, {lock} lacks it: run `bash scripts/lock.sh`"
        assert entries[name][0] == version, (
            f"{source} pins {name}=={version}, {lock} has {entries[name][0]}: run `bash scripts/lock.sh`"
        )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_hashed(lock: str) -> None:
    text = (ROOT / lock).read_text()
    assert "bash scripts/lock.sh" in text.split("\n\n")[0], "the header names the command that made it"
    entries = locked(ROOT / lock)
    assert len(entries) >= len(pins(ROOT / LOCKS[lock])) - len(FROM_ELSEWHERE)
    for name, (_, hashes) in entries.items():
        assert hashes, f"{lock}: {name} has no --hash"


def test_the_torch_image_lock_leaves_the_cuda_stack_out() -> None:
    cuda = [name for name in locked(ROOT / "requirements.lock") if CUDA_ONLY.match(name)]
    assert cuda == [], "PyPI's CUDA torch dependencies would add GBs the CPU build does not use"


def test_both_images_run_the_same_onnx_runtime_set() -> None:
    torch_image = locked(ROOT / "requirements.lock")
    for name, (version, _) in locked(ROOT / "requirements-onnx.lock").items():
        assert torch_image[name][0] == version, name
