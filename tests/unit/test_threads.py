"""The thread rule with fake memory sizes, and the CPU facts from fake /proc/cpuinfo texts."""

from __future__ import annotations

import pytest

from handler.hardware import cpu, threads
from handler.hardware.threads import MEMORY_ENV, plan

# memory MB -> (threads, spinning) on a sandbox that sees 2 cores (Lambda: every size up to 3,008 MB)
TWO_CORES = {
    128: (1, False),  # share 0.07
    1024: (1, False),  # 0.58
    1769: (1, True),  # 1.00: one vCPU's worth
    2048: (1, True),  # 1.16: round, not ceil
    2700: (2, False),  # 1.53
    3008: (2, False),  # 1.70: two threads, but they must not spin on 1.7 vCPUs
    3538: (2, True),  # 2.00
    10240: (2, True),  # 5.79, capped by the visible cores
}


@pytest.mark.parametrize(("memory", "expected"), TWO_CORES.items())
def test_threads_and_spinning_follow_the_share(memory: int, expected: tuple[int, bool]) -> None:
    chosen = plan(memory_mb=memory, visible=2)
    assert (chosen.threads, chosen.spinning) == expected
    assert chosen.share == pytest.approx(memory / 1769)


def test_more_visible_cores_are_used_as_the_share_grows() -> None:
    assert plan(memory_mb=5307, visible=3).threads == 3  # Lambda shows 3 cores at 5,307 MB
    assert plan(memory_mb=10240, visible=6).threads == 6
    assert plan(memory_mb=3538, visible=6).threads == 2


def test_the_lambda_variable_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "1024")
    assert (plan(visible=2).threads, plan(visible=2).spinning) == (1, False)
    assert threads.allow_spinning(1) is False and threads.allow_spinning(1, share=1.0) is True


@pytest.mark.parametrize("value", [None, "", "not-a-number"])
def test_off_lambda_every_visible_core_spins(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(MEMORY_ENV, raising=False)
    else:
        monkeypatch.setenv(MEMORY_ENV, value)
    chosen = plan(visible=4)
    assert (chosen.threads, chosen.spinning, chosen.memory_mb) == (4, True, None)


def test_the_onnx_session_gets_spinning_off_below_the_share(monkeypatch: pytest.MonkeyPatch) -> None:
    from handler.backends.onnx_backend import SPINNING, session_options

    monkeypatch.setenv(MEMORY_ENV, "3008")
    assert session_options(2).get_session_config_entry(SPINNING) == "0"
    monkeypatch.setenv(MEMORY_ENV, "3538")
    with pytest.raises(Exception):  # noqa: B017, PT011 - ORT raises a bare RuntimeError for an unset key
        session_options(2).get_session_config_entry(SPINNING)


EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse sse2 avx avx2 fma bmi2
"""
XEON_VNNI = EPYC.replace("AMD EPYC 7R13 Processor", "Intel(R) Xeon(R) Platinum 8488C").replace(
    "bmi2", "bmi2 avx512f avx512_vnni amx_tile amx_int8"
)
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_cpu_facts() -> None:
    assert cpu.cpu_model(EPYC) == "AMD EPYC 7R13 Processor"
    assert cpu.int8_flags(EPYC) == ["AVX2 only"]
    assert cpu.int8_flags(XEON_VNNI) == ["amx_int8", "avx512_vnni"]  # best first
    assert cpu.cpu_model(GRAVITON2) == "Neoverse N1 (Graviton2)"
    assert cpu.int8_flags(GRAVITON2) == ["asimddp"]
    assert cpu.int8_flags("") == []
    assert cpu.cpu_model() and isinstance(cpu.int8_flags(), list)  # this machine's, whatever it is
