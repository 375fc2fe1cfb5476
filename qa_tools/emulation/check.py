"""Do an emulated CPU's answers match this machine's? The same span wherever the answer is not a near-tie.

Two CPUs run different int8 kernels (VNNI, AVX2, arm64 dot product), which round differently: logits move by up
to ~0.16 (minilm, measured), enough to swap two answers that score almost alike, never a clear winner. So:

* a question is a **near-tie** when native's best answer scores less than ``NEAR_TIE`` times its runner-up;
* every other question must have the same span (start and end) on both CPUs: one decisive flip fails;
* and overall at least ``MIN_SHARE`` of the questions must have the same span, near-ties included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NEAR_TIE = 1.25  # best / runner-up score below this: a near-tie either CPU may break its own way
MIN_SHARE = 0.9  # of all questions, near-ties included, with the same span


def _span(answer: Mapping[str, Any] | None) -> tuple[int, int] | None:
    return None if answer is None else (int(answer["start"]), int(answer["end"]))


@dataclass(frozen=True)
class Agreement:
    id: str
    native: Sequence[Mapping[str, Any]]  # best first, as the function returns them with top_k
    emulated: Sequence[Mapping[str, Any]]

    @property
    def same(self) -> bool:
        return _span(self.native[0] if self.native else None) == _span(
            self.emulated[0] if self.emulated else None
        )

    @property
    def margin(self) -> float:
        """Native's best score over its runner-up's (inf when there is no runner-up)."""
        if len(self.native) < 2 or float(self.native[1]["score"]) <= 0:
            return math.inf
        return float(self.native[0]["score"]) / float(self.native[1]["score"])

    @property
    def near_tie(self) -> bool:
        return self.margin < NEAR_TIE

    def to_dict(self) -> dict[str, Any]:
        pick = ("answer", "score", "start", "end")
        return {
            "id": self.id,
            "same": self.same,
            "margin": None if math.isinf(self.margin) else round(self.margin, 3),
            "near_tie": self.near_tie,
            "native": {k: self.native[0][k] for k in pick} if self.native else None,
            "emulated": {k: self.emulated[0][k] for k in pick} if self.emulated else None,
        }


@dataclass(frozen=True)
class Verdict:
    machine: str
    variant: str
    agreements: Sequence[Agreement]
    min_share: float = MIN_SHARE

    @property
    def same(self) -> int:
        return sum(a.same for a in self.agreements)

    @property
    def share(self) -> float:
        return self.same / len(self.agreements) if self.agreements else 0.0

    @property
    def decisive_flips(self) -> list[Agreement]:
        return [a for a in self.agreements if not a.same and not a.near_tie]

    @property
    def passed(self) -> bool:
        return bool(self.agreements) and not self.decisive_flips and self.share >= self.min_share

    def describe(self) -> str:
        flips = ", ".join(f"{a.id} (margin {a.margin:.2f})" for a in self.decisive_flips) or "none"
        return (
            f"{self.variant} on {self.machine}: {self.same}/{len(self.agreements)} same span "
            f"({self.share:.0%}, minimum {self.min_share:.0%}); flips outside near-ties (best < {NEAR_TIE}x "
            f"runner-up): {flips}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "variant": self.variant,
            "same_span": self.same,
            "count": len(self.agreements),
            "share": round(self.share, 4),
            "min_share": self.min_share,
            "near_tie": NEAR_TIE,
            "passed": self.passed,
            "questions": [a.to_dict() for a in self.agreements],
        }


def compare(
    machine: str,
    variant: str,
    native: Mapping[str, Sequence[Mapping[str, Any]]],
    emulated: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    min_share: float = MIN_SHARE,
) -> Verdict:
    """Question by question (native's ids); a question the emulated run did not answer counts as different."""
    agreements = [Agreement(qid, answers, emulated.get(qid, [])) for qid, answers in native.items()]
    return Verdict(machine, variant, agreements, min_share)
