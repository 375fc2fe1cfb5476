"""The CPU this process runs on and its int8 instructions, from ``/proc/cpuinfo``: what a self-check reports.

ONNX Runtime picks its int8 kernels by CPU at run time (AMX, AVX-512 VNNI, AVX-VNNI, AVX2 on x86; dot product
and i8mm on arm64), so an answer's provenance includes the CPU. Lambda's x86 hosts promise AVX2, nothing newer;
arm64 functions run on Graviton (2 to 4). Under qemu the x86 flags are the host's (CPUID is not read here).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# Best first: the first one present is the int8 path ONNX Runtime can take.
INT8_FLAGS: tuple[str, ...] = ("amx_int8", "avx512_vnni", "avx_vnni", "avx2", "i8mm", "asimddp")
# arm64 cpuinfo names no model: (implementer, part) does. 0x41 is Arm Ltd.
ARM_PARTS: dict[tuple[str, str], str] = {
    ("0x41", "0xd0c"): "Neoverse N1 (Graviton2)",
    ("0x41", "0xd40"): "Neoverse V1 (Graviton3)",
    ("0x41", "0xd4f"): "Neoverse V2 (Graviton4)",
}


def _fields(text: str) -> dict[str, str]:
    """The first processor's fields (every processor of a Lambda sandbox is the same model)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def describe(text: str | None = None) -> dict[str, Any]:
    """``{"arch", "model", "int8"}``: int8 lists the INT8_FLAGS present, best first (``[]``: none, or unreadable)."""
    if text is None:
        try:
            text = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
    fields = _fields(text)
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name")
    if model is None and "cpu implementer" in fields:
        key = (fields["cpu implementer"], fields.get("cpu part", ""))
        model = ARM_PARTS.get(key, f"arm implementer {key[0]} part {key[1]}")
    return {
        "arch": platform.machine(),
        "model": model or "unknown",
        "int8": [flag for flag in INT8_FLAGS if flag in flags],
    }


def int8_summary(int8: list[str]) -> str:
    """A short name of the int8 path: "avx512_vnni", "AVX2 only", "asimddp", ..."""
    if not int8:
        return "no int8 dot product"
    if int8 == ["avx2"]:
        return "AVX2 only"
    return int8[0]


def cpu_model(text: str | None = None) -> str:
    """The model name (arm64: the Neoverse core named by implementer and part), for the init log."""
    return str(describe(text)["model"])


def int8_listing(int8: list[str]) -> list[str]:
    """``describe``'s int8 list as the init log shows it: the dot-product instructions, best first, or
    ``["AVX2 only"]`` for x86 with none of them."""
    return [int8_summary(int8)] if int8 == ["avx2"] else [flag for flag in int8 if flag != "avx2"]


def int8_flags(text: str | None = None) -> list[str]:
    """``int8_listing`` of this CPU (or of ``text``)."""
    return int8_listing(describe(text)["int8"])
