"""A direct invoke ``{"self_check": {}}`` (or ``{"self_check": {"sample": 50}}``): the manifest's golden answers
re-asked on the CPU this sandbox runs on.

ONNX Runtime's int8 kernels differ by CPU (AVX-512 VNNI, AVX2, arm64 dot product), and Lambda does not say which
CPU a version gets. The pre-traffic hook (template.yaml) sends this to a new version before the ``live`` alias
moves, and ``python -m qa_tools.audit`` to one already deployed: both fail below the manifest's threshold and
name the CPU and its int8 instructions. API Gateway events never take this path (they carry a requestContext).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handler.api.errors import BadRequest, failure
from handler.contract import PredictRequest
from handler.hardware import cpu
from handler.service import QAService
from handler.store.golden import GoldenAnswer

MAX_DIFFERENCES = 5  # examples of differing answers in the result (ids and texts, never more)
NO_GOLDEN = (
    "the model's manifest has no golden answers (published before they were recorded, or served without a "
    "manifest): nothing to compare"
)


def handle_self_check(event: dict[str, Any], context: Any, service: QAService) -> dict[str, Any]:
    try:
        options = event.get("self_check")
        options = {} if options in (None, True) else options
        if not isinstance(options, dict) or set(options) - {"sample"}:
            raise BadRequest('self_check must be {} or {"sample": N}')
        sample = options.get("sample")
        if sample is not None and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 1):
            raise BadRequest("self_check.sample must be a positive integer")
        remaining = context.get_remaining_time_in_millis if context is not None else _unknown
        return {"self_check": self_check(service, sample, remaining)}
    except Exception as exc:
        return failure(exc).body()


def _unknown() -> int | None:
    return None


def self_check(
    service: QAService, sample: int | None = None, remaining_ms: Callable[[], int | None] = _unknown
) -> dict[str, Any]:
    """Agreement with the golden spans, the threshold, and the CPU it was measured on."""
    described = cpu.describe()
    result: dict[str, Any] = {
        "variant": service.variant,
        "cpu": described["model"],
        "arch": described["arch"],
        "int8": described["int8"],
        "int8_path": cpu.int8_summary(described["int8"]),
    }
    golden = service.golden
    if golden is None:
        return {**result, "passed": None, "reason": NO_GOLDEN}
    asked = golden.sample(sample)
    got = _answers(service, [(a.question, golden.contexts[a.context]) for a in asked], remaining_ms)
    differing = [
        (a, g) for a, g in zip(asked, got, strict=True) if (g["start"], g["end"]) != (a.start, a.end)
    ]
    same = len(asked) - len(differing)
    agreement = same / len(asked)
    return {
        **result,
        "reference": golden.reference,
        "probes": golden.probes,
        "count": len(asked),
        "same_span": same,
        "agreement": round(agreement, 4),
        "threshold": golden.threshold,
        "passed": agreement >= golden.threshold,
        "differences": [_difference(a, g) for a, g in differing[:MAX_DIFFERENCES]],
    }


def _answers(
    service: QAService, pairs: list[tuple[str, str]], remaining_ms: Callable[[], int | None]
) -> list[dict[str, Any]]:
    """One question per call, as a direct invoke asks it: each within the function's limits and time left."""
    answers: list[dict[str, Any]] = []
    for question, context in pairs:
        request = PredictRequest.model_validate({"question": question, "context": context})
        answers.append(service.predict(request, remaining_ms()))
    return answers


def _difference(expected: GoldenAnswer, got: dict[str, Any]) -> dict[str, Any]:
    return {"id": expected.id, "expected": expected.text, "got": got["answer"]}
