"""The machine a benchmark ran on, for its report: CPU model and the CPU flags int8 inference depends on.

Int8 speed-ups depend on the CPU more than on anything else: ONNX Runtime's int8 kernels use dot-product
instructions when there are some -- AVX-512 VNNI (``avx512_vnni``, Cascade Lake and later Xeons, AMD Zen 4+),
AVX-VNNI (``avx_vnni``, Alder Lake and later), AMX (``amx_int8``/``amx_tile``, Sapphire Rapids) or, on arm64,
``asimddp`` (SDOT/UDOT: Graviton 2 and later) -- and fall back to widening multiplies without them. Every
benchmark table names these flags so its ratios can be read for another CPU.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp")
_LIBRARIES = ("torch", "transformers", "onnxruntime", "tokenizers", "numpy", "boto3", "moto")


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def cpu_model() -> str:
    lines = _cpuinfo()
    # x86: "model name"; arm64 kernels print no model name, only "CPU part" (0xd0c = Neoverse N1, Graviton 2).
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    family = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("cpu family")), "")
    number = next((ln.split(":", 1)[1].strip() for ln in lines if ln.split(":")[0].strip() == "model"), "")
    if model and family and number:  # a VM may only say "AMD EPYC": family 25 model 17 is Zen 4 (Genoa)
        model = f"{model} (family {family}, model {number})"
    if not model:
        part = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("CPU part")), "")
        model = (
            f"{platform.machine()} CPU part {part}" if part else platform.processor() or platform.machine()
        )
    return model


def int8_flags() -> list[str]:
    """The int8-relevant flags this CPU reports, in ``INT8_FLAGS`` order (empty: none of them)."""
    flags = next(
        (ln.split(":", 1)[1].split() for ln in _cpuinfo() if ln.startswith(("flags", "Features"))), []
    )
    return [f for f in INT8_FLAGS if f in set(flags)]


def cpu_line() -> str:
    """One line for a report header: model, CPU count, int8 flags present (and which ones were looked for)."""
    present = ", ".join(int8_flags()) or "none"
    return f"{cpu_model()}, {os.cpu_count()} CPUs; int8 flags: {present} (of {', '.join(INT8_FLAGS)})"


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    """CPU, flags, memory, OS, Python and the versions of the libraries the benchmarks measure."""
    mem_kib = next(
        (
            int(ln.split()[1])
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        ),
        0,
    )
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "absent"
    return {
        "cpu": cpu_model(),
        "int8_flags": int8_flags(),
        "cpu_line": cpu_line(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }
