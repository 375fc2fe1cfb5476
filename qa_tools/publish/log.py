"""Where the publish tooling talks: progress and notes on stderr, so stdout carries only the result."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(message, file=sys.stderr)
