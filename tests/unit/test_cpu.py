"""handler.hardware.cpu: the CPU model and int8 instructions a self-check reports, from /proc/cpuinfo."""

from __future__ import annotations

from handler.hardware import cpu
from qa_tools.emulation.machines import GRAVITON2_CPUINFO
from tests.fixtures.cpuinfo import X86_AVX2, X86_VNNI


def test_x86_model_and_int8_flags_best_first() -> None:
    described = cpu.describe(X86_VNNI)
    assert described["model"] == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"  # the first processor's
    assert described["int8"] == ["avx512_vnni", "avx2"]
    assert cpu.int8_summary(described["int8"]) == "avx512_vnni"


def test_avx2_only_host() -> None:
    assert cpu.int8_summary(cpu.describe(X86_AVX2)["int8"]) == "AVX2 only"


def test_graviton2_named_from_implementer_and_part() -> None:
    described = cpu.describe(GRAVITON2_CPUINFO.read_text())
    assert described["model"] == "Neoverse N1 (Graviton2)"
    assert described["int8"] == ["asimddp"]


def test_unknown_arm_part_and_unreadable_cpuinfo() -> None:
    assert cpu.describe("CPU implementer\t: 0x61\nCPU part\t: 0x022\nFeatures\t: fp asimd\n")["model"] == (
        "arm implementer 0x61 part 0x022"
    )
    assert cpu.describe("") == {"arch": cpu.platform.machine(), "model": "unknown", "int8": []}
    assert cpu.int8_summary([]) == "no int8 dot product"
