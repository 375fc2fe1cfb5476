"""The CPU this sandbox got, for the init log: its model and the int8 instructions its kernels can use.

AWS runs x86 functions on mixed hardware and promises AVX2, not AVX-512 or VNNI; int8 speed depends on which
dot-product instructions the host has (x86: AVX-512 VNNI, AVX-VNNI, AMX; arm64: SDOT/UDOT ``asimddp``,
SMMLA ``i8mm``). Logging them at init lets a user's CloudWatch logs explain a slow sandbox.
"""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
X86_INT8 = ("avx512_vnni", "avx_vnni", "amx_int8")
ARM_INT8 = ("asimddp", "i8mm")
AVX2_ONLY = "AVX2 only"  # x86 with AVX2 and none of X86_INT8: int8 through widening multiplies


def _fields(text: str, names: tuple[str, ...]) -> str:
    """The value of the first line whose field name is one of ``names`` ("" when none is)."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in names:
            return value.strip()
    return ""


def _read(cpuinfo: str | None) -> str:
    if cpuinfo is not None:
        return cpuinfo
    try:
        return CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """x86: "model name"; arm64 kernels print none, only "CPU part" (0xd0c Neoverse N1 = Graviton 2)."""
    text = _read(cpuinfo)
    model = _fields(text, ("model name",))
    if model:
        return model
    part = _fields(text, ("CPU part",))
    return f"{platform.machine()} CPU part {part}" if part else platform.machine() or "unknown"


def int8_flags(cpuinfo: str | None = None) -> list[str]:
    """The int8 dot-product flags present; ``["AVX2 only"]`` for an x86 CPU with AVX2 and none of them."""
    flags = set(_fields(_read(cpuinfo), ("flags", "Features")).split())
    found = [f for f in (*X86_INT8, *ARM_INT8) if f in flags]
    if not found and "avx2" in flags:
        return [AVX2_ONLY]
    return found
