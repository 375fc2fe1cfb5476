"""Progress on stderr for the tooling's long, otherwise silent steps (publish's fidelity measurement).

On a terminal, a tqdm bar; in a log or a pipe, a few plain lines (every quarter of the way and at the end)
instead of the carriage returns a bar would leave there. stdout stays for results.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TextIO

from tqdm import tqdm

Advance = Callable[[int], None]  # called with how many more units are done
# Given the total, a context in which to report progress: what a long step takes to show how far it is.
Reporter = Callable[[int], AbstractContextManager[Advance]]
PLAIN_STEPS = 4  # lines a non-terminal gets besides the first: at 25, 50, 75 and 100 %


def reporter(what: str, *, unit: str, enabled: bool = True, stream: TextIO | None = None) -> Reporter:
    """Progress of ``what``, counted in ``unit``; ``enabled=False`` (``--no-progress``) shows nothing."""

    @contextmanager
    def report(total: int) -> Iterator[Advance]:
        out = stream or sys.stderr
        if not enabled or total <= 0:
            yield lambda n: None
        elif out.isatty():
            with tqdm(total=total, desc=what, unit=f" {unit}", file=out, leave=True) as bar:
                yield bar.update
        else:
            yield _plain(out, what, unit, total)

    return report


def silent(total: int) -> AbstractContextManager[Advance]:
    """A ``Reporter`` that shows nothing."""
    return reporter("", unit="", enabled=False)(total)


def _plain(out: TextIO, what: str, unit: str, total: int) -> Advance:
    done = 0
    shown = 0  # quarters already printed

    def line() -> None:
        print(f"  {what}: {done}/{total} {unit} ({done / total:.0%})", file=out, flush=True)

    line()

    def advance(n: int) -> None:
        nonlocal done, shown
        done = min(total, done + n)
        reached = done * PLAIN_STEPS // total
        if reached > shown:
            shown = reached
            line()

    return advance
