"""The results file: JSONL, one whole line per answered item, so an interrupted run can resume.

Each result is appended with a single ``write`` of the complete line to a file opened ``O_APPEND``; a run
killed mid-write can leave at most a torn last line, which reopening detects and cuts off (that item is then
answered again). Reopening also says which items are done, by key (``items.key``). Any other line that is
not a result means the file is not ours: refuse rather than guess.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from qa_tools.bulk.items import Key, result_key


class ResultsFileError(ValueError):
    """OUTPUT has a line that is not a result (other than a torn last line)."""


class ResultsFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.done: set[Key] = set()
        self.repaired = False  # a torn last line was cut off
        self._scan()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _scan(self) -> None:
        if not self.path.exists():
            return
        good = 0  # bytes of whole result lines so far
        torn: str | None = None
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if torn is not None:  # the bad line was not the last one
                    raise ResultsFileError(f"{self.path}, line {number - 1}: {torn}; not a results file?")
                record, problem = _parse(raw)
                if record is None:
                    torn = problem
                else:
                    self.done.add(record[0])
                    good += len(raw)
        if torn is not None:
            os.truncate(self.path, good)
            self.repaired = True

    def append(self, record: dict[str, Any]) -> None:
        line = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        while line:
            line = line[os.write(self._fd, line) :]

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _parse(raw: bytes) -> tuple[tuple[Key, dict[str, Any]] | None, str]:
    """A whole result line as (key, record), or None and why it is not one."""
    if not raw.endswith(b"\n"):
        return None, "an incomplete line"
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "not JSON"
    k = result_key(record) if isinstance(record, dict) else None
    if k is None:
        return None, "a line with neither 'id' nor 'line'"
    return (k, record), ""


def read_results(path: Path) -> dict[Key, dict[str, Any]]:
    """Every result by key; a later line for the same key wins."""
    results: dict[Key, dict[str, Any]] = {}
    with open(path, "rb") as f:
        for raw in f:
            parsed, _ = _parse(raw)
            if parsed is not None:
                results[parsed[0]] = parsed[1]
    return results
