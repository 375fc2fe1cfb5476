"""``bulk run``: the Distributed Map job on this machine, through the function's own init and answer path.

The model is loaded by ``handler.runtime.loader.load_service`` from settings read the function's way (the same
environment variables and limits), and the items go through ``handler.api.batch`` in chunks, exactly as a
batch does inside the function: a result line here is what the function returns for that item, plus
``"line": N`` for items without an id. There is no time budget locally, so nothing comes back ``out_of_time``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from handler import variants
from handler.api import Prepared, answer_batch, prepare_item
from handler.observability import logger, metrics
from handler.runtime.loader import load_service
from handler.service import QAService
from handler.settings import Settings
from qa_tools.bulk.items import LINE, Key, count_lines, gold_answers, item_key, read_lines
from qa_tools.bulk.output import ResultsFile, read_results
from qa_tools.bulk.sizing import BatchLimits, batch_limits
from qa_tools.squad import SquadItem, evaluate

SYNC_EVERY_S = 2.0  # fsync the results this often: a crash loses at most this much work
CHUNK = 32  # items answered together (sharing forward passes), then written: what an interruption may redo
MAX_REPORTED = 20  # problems printed one by one; the rest are counted


@dataclass
class Report:
    input: str
    output: str
    lines: int = 0  # items and unreadable lines read
    answered: int = 0  # results written by this run (answers and item errors)
    skipped: int = 0  # already in OUTPUT (resumed)
    bad_lines: int = 0  # not items at all (unreadable, not an object, duplicate key)
    errors: Counter[str] = field(default_factory=Counter)  # item errors of this run, by type
    repaired: bool = False  # OUTPUT ended with a torn line, cut off before resuming
    seconds: float = 0.0  # spent answering
    windows: int = 0
    bytes: int = 0  # of the items answered, as JSONL
    evaluation: dict[str, float] | None = None

    @property
    def questions_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def limits(self, timeout_s: float) -> BatchLimits | None:
        """The ItemBatcher limits this run's speed and items would call for (see ``sizing``)."""
        if not (self.windows and self.answered and self.bytes):
            return None
        return batch_limits(
            ms_per_window=1000 * self.seconds / self.windows,
            windows_per_item=self.windows / self.answered,
            bytes_per_window=self.bytes / self.windows,
            timeout_s=timeout_s,
        )


def local_service(model: str, backend: str | None = None, precision: str | None = None) -> QAService:
    """The function's init on this machine: ``model`` is a model directory or a published ``s3://`` prefix."""
    remote = model.startswith("s3://")
    os.environ.pop("MODEL_LOCAL_PATH" if remote else "MODEL_S3_URI", None)
    os.environ["MODEL_S3_URI" if remote else "MODEL_LOCAL_PATH"] = model
    if backend:
        os.environ["QA_BACKEND"] = backend
    if precision:
        os.environ[variants.precision_env(os.environ.get("QA_BACKEND", "torch"))] = precision
    logs_to_stderr()
    service = load_service(Settings.from_env())
    metrics.clear_metrics()  # init metrics are CloudWatch's
    if service.engine is None:
        raise RuntimeError(service.unavailable)
    return service


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (a caller or a test may replace it later)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def logs_to_stderr() -> None:
    """Powertools logs to stdout (CloudWatch reads it on Lambda); a CLI keeps stdout for its results."""
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(_Stderr())


def run(
    input_path: Path,
    output_path: Path,
    service: QAService,
    *,
    fmt: str,
    parameters: Mapping[str, Any],
    score: bool = False,
    progress: bool = True,
    chunk: int = CHUNK,
    clock: Callable[[], float] = time.perf_counter,
) -> Report:
    """Answers every item of ``input_path`` not yet in ``output_path``; see the module docstring."""
    report = Report(str(input_path), str(output_path))
    golds: dict[Key, SquadItem] = {}
    seen: set[Key] = set()
    pending: list[tuple[int, Key, int, Prepared]] = []  # (line number, key, size, prepared item)
    total = count_lines(input_path, fmt)
    with (
        ResultsFile(output_path) as results,
        tqdm(total=total, unit="q", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),  # the function's EMF metrics: meaningless on this machine
    ):
        report.repaired = results.repaired
        last_sync = clock()

        def answer_pending() -> None:
            nonlocal last_sync
            start = clock()
            answers = answer_batch([p for *_, p in pending], service, lambda: None)
            report.seconds += clock() - start
            metrics.clear_metrics()  # never let Powertools accumulate (and print) the function's metrics
            for (number, k, size, prepared), result in zip(pending, answers, strict=True):
                results.append({LINE: number, **result} if k[0] == LINE else result)
                report.answered += 1
                report.windows += prepared.windows
                report.bytes += size
                if "error" in result:
                    report.errors[result["error"]["type"]] += 1
                    _note(report, number, f"{result['error']['type']}: {result['error']['message']}")
            pending.clear()
            if clock() - last_sync >= SYNC_EVERY_S:
                results.sync()
                last_sync = clock()

        for line in read_lines(input_path, fmt):
            bar.update(1)
            report.lines += 1
            if line.item is None:
                _bad(report, line.number, line.problem)
                continue
            k = item_key(line.item, line.number)
            if k in seen:
                _bad(report, line.number, f"duplicate {k[0]} {k[1]}: only its first line is answered")
                continue
            seen.add(k)
            gold = gold_answers(line.item) if score else None
            if gold is not None:
                golds[k] = SquadItem(f"{k[0]}:{k[1]}", "", "", gold)
            if k in results.done:
                report.skipped += 1
                continue
            start = clock()
            pending.append((line.number, k, line.size, prepare_item(line.item, parameters, service)))
            report.seconds += clock() - start
            if len(pending) >= chunk:
                answer_pending()
        if pending:
            answer_pending()
    if score and golds:
        report.evaluation = _evaluate(golds, output_path)
    return report


def _evaluate(golds: Mapping[Key, SquadItem], output_path: Path) -> dict[str, float]:
    """SQuAD 2.0 scores over the items with gold answers and an answer in OUTPUT (item errors are unscored)."""
    predictions: dict[str, str] = {}
    for k, record in read_results(output_path).items():
        if k in golds and "error" not in record:
            best = record["answers"][0] if record.get("answers") else record
            predictions[golds[k].id] = best.get("answer", "")
    scores = evaluate(list(golds.values()), predictions)
    scores["unscored"] = float(len(golds) - len(predictions))
    return scores


def _bad(report: Report, number: int, problem: str) -> None:
    report.bad_lines += 1
    _note(report, number, problem)


def _note(report: Report, number: int, message: str) -> None:
    shown = report.bad_lines + sum(report.errors.values())
    if shown <= MAX_REPORTED:
        tqdm.write(f"line {number}: {message}", file=sys.stderr)
    elif shown == MAX_REPORTED + 1:
        tqdm.write("... (more problems: counted in the summary)", file=sys.stderr)
