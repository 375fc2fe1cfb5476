"""The emulated CPUs and the command line that runs a Python under each.

Graviton2: ``qemu-aarch64-static -cpu neoverse-n1`` (asimd dot product, no i8mm or SVE) runs the arm64 root's
Python (``arm64_env``). qemu passes the host's x86 ``/proc/cpuinfo`` through, and ONNX Runtime's cpuinfo then
crashes ``import onnxruntime`` (a segfault); a Graviton2 cpuinfo (``cpuinfo.graviton2``, beside this file) is
bind-mounted over it in a private mount namespace (``unshare -m``: root only, nothing leaks to the host).

Haswell: ``qemu-x86_64-static -cpu Haswell`` runs this machine's x86 interpreter unchanged; CPUID then shows AVX2
and hides AVX-512, VNNI and AMX, so ONNX Runtime takes its AVX2 kernels (``/proc/cpuinfo`` still shows the host's
flags, which ONNX Runtime's x86 dispatch does not read). NumPy's own AVX2 kernels stay off there
(``NPY_DISABLE_CPU_FEATURES=X86_V3``): qemu 7.2 misexecutes its AVX2 sort (x86-simd-sort), so ``argsort`` and
``argpartition`` return misordered indices (226 of 300 random float32 arrays; 0 natively, 0 with the dispatch
off), which dropped the best span from four answers while ONNX Runtime's logits were native's. The check is of
ONNX Runtime's kernels; NumPy's AVX2 sort is covered by NumPy's own CI on real hardware, not here.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GRAVITON2_CPUINFO = Path(__file__).with_name("cpuinfo.graviton2")


@dataclass(frozen=True)
class Machine:
    name: str
    arch: str  # platform.machine() inside
    qemu: str  # the qemu-user binary
    cpu: str  # its -cpu model
    description: str
    cpuinfo: Path | None = None  # bind-mounted over /proc/cpuinfo when set
    guest_env: tuple[tuple[str, str], ...] = ()  # set inside, over the caller's environment

    def missing(self) -> list[str]:
        """What this machine lacks to emulate it (empty: ready); each entry says how to get it."""
        gaps = [
            f"{tool} (bash scripts/install-emulators.sh)" for tool in self.tools() if not shutil.which(tool)
        ]
        if self.cpuinfo is not None and os.geteuid() != 0:
            gaps.append("root (unshare -m and mount --bind for the emulated /proc/cpuinfo)")
        return gaps

    def tools(self) -> tuple[str, ...]:
        if self.cpuinfo is None:
            return (self.qemu,)
        return (self.qemu, "unshare", "mount", "debootstrap", "dpkg-deb")

    def command(
        self,
        python: Path | str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        root: Path | None = None,
        prelude: Sequence[str] = (),
    ) -> list[str]:
        """argv that runs ``python args`` on this CPU with exactly ``env`` (nothing else of ours leaks in).

        ``root``: the guest's filesystem prefix (qemu ``-L``); ``prelude``: shell lines run as root inside the
        private mount namespace before the interpreter starts (a test's extra mounts).
        """
        qemu = [self.qemu, "-cpu", self.cpu, *(["-L", str(root)] if root else []), str(python), *args]
        inside = {**env, **dict(self.guest_env)}
        program = ["env", "-i", *(f"{k}={v}" for k, v in inside.items()), *qemu]
        if self.cpuinfo is None and not prelude:
            return program
        mounts = list(prelude)
        if self.cpuinfo is not None:
            mounts.append(f"mount --bind {shlex.quote(str(self.cpuinfo))} /proc/cpuinfo")
            if root is not None:
                mounts.append(
                    f"mount --bind {shlex.quote(str(self.cpuinfo))} {shlex.quote(str(root))}/proc/cpuinfo"
                )
        script = " && ".join([*mounts, 'exec "$@"'])
        return ["unshare", "-m", "sh", "-c", script, "sh", *program]


GRAVITON2 = Machine(
    name="graviton2",
    arch="aarch64",
    qemu="qemu-aarch64-static",
    cpu="neoverse-n1",
    description="AWS Graviton2 (Neoverse N1): arm64 with asimd dot product, no i8mm, no SVE",
    cpuinfo=GRAVITON2_CPUINFO,
)
HASWELL = Machine(
    name="haswell",
    arch="x86_64",
    qemu="qemu-x86_64-static",
    cpu="Haswell",
    description="x86-64 with AVX2 only (no AVX-512, VNNI or AMX): the least Lambda's x86 hosts promise",
    guest_env=(("NPY_DISABLE_CPU_FEATURES", "X86_V3"),),  # qemu misexecutes NumPy's AVX2 sort: see above
)
MACHINES: dict[str, Machine] = {m.name: m for m in (GRAVITON2, HASWELL)}
