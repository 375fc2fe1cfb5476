"""Step Functions Distributed Map batches (ItemBatcher): ``{"Items": [...], "BatchInput": {"parameters": {...}}}``.

Each item is ``{"id"?, "question", "context", ...parameters}`` and goes through exactly what a direct invoke of
that item goes through (``PredictRequest``, ``QAService.prepare`` / ``answer``, ``failure``), so its result is
the answer a single invoke would return, plus its ``id``: the answer object (``top_k`` 1), ``{"answers": [...]}``
(``top_k`` > 1) or ``{"error": {...}}`` for that item alone. ``BatchInput.parameters`` are the API's parameters
and apply to every item that does not set its own. ``answers`` (gold answers, for evaluation) may travel with
an item and is ignored.

Each item is validated and tokenized alone, and fails alone; consecutive items with the same parameters then
share forward passes, up to ``MAX_BATCH_WINDOWS`` windows (the engine's unit): less time per question than one
item per pass, with the same spans (bench/bulk_items.py measures both; docs/bulk-jobs.md has the figures).
Scores may differ from a single invoke's in the last digits (padded, batched arithmetic), as in the API's own
``inputs`` batches. Before each
forward pass the time left is compared with its windows: when it no longer fits, its items and every later
one are marked ``out_of_time`` (503: not attempted, resend as is). An item too large even for a fresh
invocation runs alone and gets ``time_budget_exceeded`` (413); the batch goes on. An item the answer cache
holds (``handler.answer_cache``) is answered at once: it needs no time, so it is never ``out_of_time``.

What concerns the whole batch -- a malformed envelope, too many items or windows (``MAX_BULK_ITEMS``,
``MAX_BULK_WINDOWS``), bad ``BatchInput.parameters``, no model -- returns one ``{"error": {...}}`` object
instead of a list; the state machine turns it into a failed child execution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from handler.api.errors import BadRequest, InvalidRequest, failure
from handler.contract import PredictRequest
from handler.engine import EncodedRequest, QAParams
from handler.errors import LimitExceeded, ModelUnavailable, OutOfTime
from handler.service import CachedResponse, QAService

ID = "id"
GOLD = "answers"  # gold answers an item may carry for evaluation; never a request field
_NOT_ITEM_FIELDS = ("inputs", "parameters")  # the request's batch form has no place inside a batch item


class BatchDefaults(BaseModel):
    """``BatchInput``: the ItemBatcher's fixed input, the same for every batch of a job."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    parameters: QAParams = Field(default_factory=QAParams, description="Defaults for every item.")


class BatchEvent(BaseModel):
    """The envelope as Step Functions sends it (its field names)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    Items: list[Any] = Field(min_length=1)
    BatchInput: BatchDefaults = Field(default_factory=BatchDefaults)


@dataclass(frozen=True)
class Prepared:
    """One item after validation and tokenization: its windows, or the failure it already is."""

    ident: dict[str, Any] = field(default_factory=dict)  # {"id": ...} when the item had a valid id
    encoded: EncodedRequest | None = None
    error: dict[str, Any] | None = None
    cached: CachedResponse | None = None  # answered from the answer cache: no work left, no time needed

    @property
    def windows(self) -> int:
        """Windows still to run (none for a cached item)."""
        return self.encoded.num_windows if self.encoded is not None else 0

    @property
    def counted_windows(self) -> int:
        """Windows the MAX_BULK_WINDOWS limit counts: a cached item's too, so a batch is refused or not alike."""
        return self.cached.windows if self.cached is not None else self.windows


def item_id(item: Mapping[str, Any]) -> dict[str, Any]:
    """``{"id": value}`` for a string or integer id, ``{}`` without one; raises for any other type."""
    if ID not in item:
        return {}
    value = item[ID]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest("id: must be a string or an integer")
    return {ID: value}


def prepare_item(item: Any, defaults: Mapping[str, Any], service: QAService) -> Prepared:
    """Validates one item as the direct invoke ``{**defaults, **item}`` and tokenizes it; never raises."""
    ident: dict[str, Any] = {}
    try:
        if not isinstance(item, dict):
            raise BadRequest("an item must be a JSON object")
        ident = item_id(item)
        fields = {k: v for k, v in item.items() if k not in (ID, GOLD)}
        misplaced = sorted(set(fields) & set(_NOT_ITEM_FIELDS))
        if misplaced:
            raise InvalidRequest(
                f"{misplaced[0]}: an item is {{'id', 'question', 'context', ...parameters}}; "
                "parameters for every item go in BatchInput.parameters"
            )
        request = PredictRequest.model_validate({**defaults, **fields})
        hit = service.cached(request)
        if hit is not None:
            return Prepared(ident, cached=hit)
        return Prepared(ident, service.prepare(request))
    except Exception as exc:
        return Prepared(ident, error=failure(exc).body())


def _answered(prepared: Prepared, answer: Any) -> dict[str, Any]:
    return {**prepared.ident, **(answer if isinstance(answer, dict) else {"answers": answer})}


def _settled(prepared: Prepared) -> dict[str, Any]:
    """An item's result known before any forward pass (its error, or its cached answer); {} otherwise."""
    if prepared.error is not None:
        return {**prepared.ident, **prepared.error}
    if prepared.cached is not None:
        return _answered(prepared, prepared.cached.body)
    return {}


def _answer_group(
    group: Sequence[Prepared], service: QAService, remaining_ms: int | None
) -> list[dict[str, Any]]:
    """One forward pass (or a few, for a long item) for items with the same parameters; a failure is each one's."""
    encoded = [p.encoded for p in group if p.encoded is not None]
    try:
        answers = service.answer(EncodedRequest.join(encoded), batch=True, remaining_ms=remaining_ms)
    except Exception as exc:
        return [{**p.ident, **failure(exc).body()} for p in group]
    return [_answered(p, a) for p, a in zip(group, answers, strict=True)]


def _not_attempted(prepared: Prepared) -> dict[str, Any]:
    message = "the invocation ran out of time before this item; it was not attempted: send it again"
    return {**prepared.ident, **failure(OutOfTime(message)).body()}


def _groups(prepared: Sequence[Prepared], max_windows: int, fits: Callable[[int], bool]) -> list[list[int]]:
    """Consecutive answerable items with the same parameters, as many as share ``max_windows`` windows and
    could run in a fresh invocation (``fits``); an item too large for either runs alone."""
    groups: list[list[int]] = []
    windows = 0
    for i, item in enumerate(prepared):
        if item.encoded is None:
            continue
        last = prepared[groups[-1][0]] if groups else None
        joins = (
            last is not None
            and last.encoded is not None
            and last.encoded.params == item.encoded.params
            and windows + item.windows <= max_windows
            and fits(windows + item.windows)
        )
        if joins:
            groups[-1].append(i)
            windows += item.windows
        else:
            groups.append([i])
            windows = item.windows
    return groups


def prepare_batch(event: Any, service: QAService) -> list[Prepared]:
    """The envelope's checks, then every item prepared; raises for what concerns the whole batch."""
    if not isinstance(event, dict):
        raise BadRequest("the payload must be a JSON object")
    if service.engine is None:
        raise ModelUnavailable(service.unavailable)
    batch = BatchEvent.model_validate(event)
    settings = service.settings
    if len(batch.Items) > settings.max_bulk_items:
        raise LimitExceeded(
            f"a batch of {len(batch.Items)} items exceeds the limit of {settings.max_bulk_items} "
            "(lower the state machine's MaxItemsPerBatch)"
        )
    defaults = batch.BatchInput.parameters.model_dump(exclude_unset=True)
    prepared = [prepare_item(item, defaults, service) for item in batch.Items]
    windows = sum(p.counted_windows for p in prepared)
    if windows > settings.max_bulk_windows:
        raise LimitExceeded(
            f"the batch needs {windows} model windows; the limit is {settings.max_bulk_windows} "
            "(lower the state machine's MaxItemsPerBatch)"
        )
    return prepared


def answer_batch(
    prepared: Sequence[Prepared], service: QAService, remaining: Callable[[], int | None]
) -> list[dict[str, Any]]:
    """Answers in order while time lasts; see the module docstring for what happens when it does not."""
    at_start = remaining()
    budget = service.budget
    results = [_settled(p) for p in prepared]
    max_windows = service.engine.max_batch_windows if service.engine is not None else 1
    groups = _groups(prepared, max_windows, lambda windows: budget.fits(windows, at_start))
    for n, group in enumerate(groups):
        windows = sum(prepared[i].windows for i in group)
        left = remaining()
        # Too late for this group, but not too big for a fresh invocation: stop here, the rest is resent.
        # Too big even for a fresh one (a lone item): _answer_group reports time_budget_exceeded for it.
        if not budget.fits(windows, left) and budget.fits(windows, at_start):
            for i in (i for later in groups[n:] for i in later):
                results[i] = _not_attempted(prepared[i])
            break
        for i, result in zip(group, _answer_group([prepared[i] for i in group], service, left), strict=True):
            results[i] = result
    return results


def handle_batch(event: Any, context: Any, service: QAService) -> Any:
    try:
        prepared = prepare_batch(event, service)
    except Exception as exc:
        return failure(exc).body()
    clock = context.get_remaining_time_in_millis if context is not None else (lambda: None)
    return answer_batch(prepared, service, clock)
