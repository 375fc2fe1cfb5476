"""The image's lock files agree with the pins people edit, and pin every package with its hashes.

requirements*.txt hold the direct pins; `bash scripts/lock.sh` resolves them (Python 3.12, manylinux x86_64 and
aarch64) into the lock files the Dockerfile installs with --require-hashes. A pin changed without re-running
the script would build an image with other versions than the ones tested: this fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures import ROOT

LOCKS = {"requirements-onnx.lock": "requirements-onnx.txt", "requirements.lock": "requirements.txt"}
FROM_ELSEWHERE = {"torch"}  # the torch image installs it from PyTorch's CPU index (requirements-torch.txt)
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def pins(path: Path) -> dict[str, str]:
    """``name==version`` pins of a requirements file, following its ``-r`` includes."""
    found: dict[str, str] = {}
    for line in (line.split("#")[0].strip() for line in path.read_text().splitlines()):
        if line.startswith("-r "):
            found |= pins(path.parent / line[3:].strip())
        elif line:
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)", line)
            assert match, f"{path.name}: {line!r} is not an exact pin (name==version)"
            found[_name(match[1])] = match[3]
    return found


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if match:
            entries[_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


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
