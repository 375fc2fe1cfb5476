"""Golden answers: the reference variant's answers to the publish probes, recorded in the manifest.

Publish records them (``qa_tools.fidelity.golden``); the function's self-check (``handler.api.self_check``)
answers the same questions on the CPU it runs on and reports how many spans match, against ``threshold`` (the
fidelity gate's). Contexts are stored once and questions point at them by index: the manifest stays small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


class GoldenError(ValueError):
    """The manifest's golden answers are not of the expected shape."""


@dataclass(frozen=True)
class GoldenAnswer:
    id: str
    question: str
    context: int  # index into Golden.contexts
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Golden:
    reference: str  # the variant that answered (e.g. onnx-fp32)
    probes: str  # name@sha256 prefix of the probe file
    threshold: float  # the least share of the same spans a served variant must reach
    contexts: tuple[str, ...]
    answers: tuple[GoldenAnswer, ...]

    def sample(self, count: int | None = None) -> tuple[GoldenAnswer, ...]:
        """``count`` answers spread evenly over the set (all of them when None or larger)."""
        if count is None or count >= len(self.answers):
            return self.answers
        step = len(self.answers) / max(count, 1)
        return tuple(self.answers[int(i * step)] for i in range(count))

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "probes": self.probes,
            "threshold": self.threshold,
            "contexts": list(self.contexts),
            "answers": [asdict(a) for a in self.answers],
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Golden:
        if not isinstance(raw, Mapping):
            raise GoldenError("golden must be an object")
        contexts, answers = raw.get("contexts"), raw.get("answers")
        threshold = raw.get("threshold")
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise GoldenError("golden.contexts must be a list of strings")
        if not isinstance(answers, list) or not answers:
            raise GoldenError("golden.answers must be a non-empty list")
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
            raise GoldenError(f"golden.threshold must be a share in [0, 1], got {threshold!r}")
        return cls(
            str(raw.get("reference", "")),
            str(raw.get("probes", "")),
            float(threshold),
            tuple(contexts),
            tuple(_answer(a, contexts) for a in answers),
        )


def _answer(raw: Any, contexts: Sequence[str]) -> GoldenAnswer:
    if not isinstance(raw, Mapping):
        raise GoldenError(f"golden answer must be an object, got {raw!r}")
    fields = {name: raw.get(name) for name in ("id", "question", "context", "text", "start", "end")}
    ints = [fields[n] for n in ("context", "start", "end")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
        raise GoldenError(f"golden answer {fields['id']!r}: context, start and end must be integers")
    if not all(isinstance(fields[n], str) for n in ("id", "question", "text")):
        raise GoldenError(f"golden answer {fields['id']!r}: id, question and text must be strings")
    answer = GoldenAnswer(**fields)  # type: ignore[arg-type]
    if not 0 <= answer.context < len(contexts):
        raise GoldenError(f"golden answer {answer.id!r}: no context {answer.context}")
    if contexts[answer.context][answer.start : answer.end] != answer.text:
        raise GoldenError(f"golden answer {answer.id!r}: text is not the context at start:end")
    return answer
