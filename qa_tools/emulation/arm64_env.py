"""An arm64 Debian root holding the onnx image's exact dependencies, built once and cached.

The root: ``debootstrap --foreign --variant=minbase`` downloads Debian's arm64 packages and ``dpkg-deb -x``
unpacks them into a folder (about a minute; no binfmt_misc, no chroot, no second stage: qemu's ``-L`` points the
emulated program at it). Its Python is Debian 12's 3.11 (the image runs 3.12; every pin has cp311 and cp312
wheels). The packages: the pins of ``requirements-onnx.lock``, hash-checked, installed by this machine's pip as
aarch64 wheels into a ``--target`` folder the emulated Python finds on ``PYTHONPATH``. pip must be given every
``manylinux_2_17 ... 2_28_aarch64`` tag as its own ``--platform`` (with 2_28 alone pydantic-core is not found).

Cached under ``~/.cache/lambda-extractive-qa/emulation`` (``$XDG_CACHE_HOME`` respected), keyed by a hash of the
lock, the Debian suite and the Python version: a changed pin builds a new root.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa_tools.emulation.cache import cache_root, move_into_cache

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements-onnx.lock"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PYTHON = "3.11"  # Debian 12's python3
PLATFORMS = tuple(f"manylinux_2_{minor}_aarch64" for minor in range(17, 29))


@dataclass(frozen=True)
class Arm64Env:
    root: Path  # qemu -L
    site: Path  # the lock's packages (PYTHONPATH)

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / f"python{PYTHON}"


def cache_key(lock: Path = LOCK) -> str:
    digest = hashlib.sha256(lock.read_bytes())
    digest.update(f"{SUITE} {PYTHON} {' '.join(PLATFORMS)}".encode())
    return digest.hexdigest()[:16]


def ensure(
    lock: Path = LOCK, cache: Path | None = None, log: Callable[[str], None] = lambda _: None
) -> Arm64Env:
    """The cached environment for ``lock``, built first if absent (a failed build leaves nothing behind)."""
    cache = cache or cache_root()
    target = cache / f"arm64-{cache_key(lock)}"
    env = Arm64Env(target / "root", target / "site")
    if (target / "ready").is_file():
        return env
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="arm64-build-", dir=cache))
    try:
        log(f"building the arm64 root in {target} (debootstrap {SUITE}, about a minute)")
        _debian_root(scratch / "debs", scratch / "root")
        log(f"installing {lock.name} as aarch64 cp{PYTHON.replace('.', '')} wheels")
        _wheels(lock, scratch / "site")
        (scratch / "ready").write_text(f"{lock.name} sha256-key {cache_key(lock)}\n")
        shutil.rmtree(scratch / "debs")
        move_into_cache(scratch, target, "ready")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return env


def _debian_root(debs: Path, root: Path) -> None:
    subprocess.run(
        ["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3",
         SUITE, str(debs), MIRROR],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    root.mkdir()
    for deb in sorted((debs / "var" / "cache" / "apt" / "archives").glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for mount_point in ("proc/cpuinfo", "sys"):  # where machines.GRAVITON2 and tests bind-mount
        (root / mount_point).parent.mkdir(parents=True, exist_ok=True)
    (root / "proc" / "cpuinfo").touch()
    (root / "sys").mkdir(exist_ok=True)


def _wheels(lock: Path, site: Path) -> None:
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(site), "--no-deps", "--require-hashes", "--only-binary=:all:",
         "--implementation", "cp", "--python-version", PYTHON, *platforms, "--requirement", str(lock)],
        check=True,
    )  # fmt: skip
