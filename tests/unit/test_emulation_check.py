"""The emulation comparison's rules (qa_tools.emulation.check) and the emulated machines' command lines."""

from __future__ import annotations

import math

import pytest

from qa_tools.emulation import check
from qa_tools.emulation.machines import GRAVITON2, HASWELL


def answers(*spans: tuple[int, int, float]) -> list[dict[str, object]]:
    return [{"answer": "x", "start": s, "end": e, "score": score} for s, e, score in spans]


CLEAR = answers((0, 5, 0.8), (6, 9, 0.1))  # best scores 8x its runner-up
TIE = answers((0, 5, 0.40), (6, 9, 0.38))  # within NEAR_TIE
TIE_SWAPPED = answers((6, 9, 0.41), (0, 5, 0.39))


def test_margin_is_best_over_runner_up() -> None:
    assert check.Agreement("q", CLEAR, CLEAR).margin == pytest.approx(8.0)
    assert check.Agreement("q", CLEAR[:1], CLEAR).margin == math.inf
    assert check.Agreement("q", TIE, TIE).near_tie
    assert not check.Agreement("q", CLEAR, CLEAR).near_tie


def test_one_clear_answer_flipped_fails() -> None:
    native = {f"q{i}": CLEAR for i in range(20)}
    emulated = dict(native, q3=answers((6, 9, 0.8), (0, 5, 0.1)))
    verdict = check.compare("m", "v", native, emulated)
    assert verdict.share == 0.95 >= check.MIN_SHARE
    assert not verdict.passed
    assert "q3" in verdict.describe()


def test_near_ties_may_flip_up_to_the_minimum_share() -> None:
    native = {f"q{i}": TIE if i < 3 else CLEAR for i in range(20)}
    two_flips = dict(native, q0=TIE_SWAPPED, q1=TIE_SWAPPED)
    assert check.compare("m", "v", native, two_flips).passed  # 18/20 = 90 %
    three_flips = dict(two_flips, q2=TIE_SWAPPED)
    verdict = check.compare("m", "v", native, three_flips)
    assert verdict.share == 0.85
    assert not verdict.passed
    assert not verdict.decisive_flips


def test_an_unanswered_question_counts_as_different() -> None:
    verdict = check.compare("m", "v", {"q": CLEAR}, {})
    assert verdict.same == 0
    assert not verdict.passed


def test_graviton2_command_mounts_its_cpuinfo_privately() -> None:
    argv = GRAVITON2.command("/root/usr/bin/python3.11", ["-V"], env={"A": "1"}, root="/r")  # type: ignore[arg-type]
    assert argv[:3] == ["unshare", "-m", "sh"]
    script = argv[4]
    assert f"mount --bind {GRAVITON2.cpuinfo} /proc/cpuinfo" in script
    assert f"mount --bind {GRAVITON2.cpuinfo} /r/proc/cpuinfo" in script
    assert argv[argv.index("env") : argv.index("env") + 3] == ["env", "-i", "A=1"]
    assert argv[-7:] == [
        "qemu-aarch64-static",
        "-cpu",
        "neoverse-n1",
        "-L",
        "/r",
        "/root/usr/bin/python3.11",
        "-V",
    ]
    assert GRAVITON2.cpuinfo is not None
    assert "asimddp" in GRAVITON2.cpuinfo.read_text()


def test_haswell_command_needs_no_namespace_and_turns_numpys_avx2_off() -> None:
    argv = HASWELL.command("/venv/bin/python", ["-V"], env={"A": "1"})
    assert argv == [
        "env",
        "-i",
        "A=1",
        "NPY_DISABLE_CPU_FEATURES=X86_V3",
        "qemu-x86_64-static",
        "-cpu",
        "Haswell",
        "/venv/bin/python",
        "-V",
    ]
