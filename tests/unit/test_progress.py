"""Progress lines on a stream that is not a terminal: a few plain lines, nothing when disabled."""

from __future__ import annotations

import io

from qa_tools.progress import reporter, silent


def test_a_log_gets_a_line_at_the_start_and_at_each_quarter() -> None:
    out = io.StringIO()  # not a terminal: no carriage returns
    with reporter("fidelity probes", unit="answers", stream=out)(10) as advance:
        for _ in range(10):
            advance(1)
    assert out.getvalue().splitlines() == [
        f"  fidelity probes: {done}/10 answers ({done / 10:.0%})" for done in (0, 3, 5, 8, 10)
    ]


def test_disabled_or_silent_shows_nothing() -> None:
    out = io.StringIO()
    with reporter("x", unit="u", enabled=False, stream=out)(10) as advance:
        advance(10)
    with silent(10) as advance:
        advance(10)
    assert out.getvalue() == ""
