"""Golden answers in the manifest (handler.store.golden): round trip, validation, sampling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.store.golden import Golden, GoldenAnswer
from handler.store.manifest import Manifest, ManifestError

CONTEXTS = ("Paris is the capital of France.", "Berlin is in Germany.")


def golden(count: int = 10) -> Golden:
    answers = tuple(
        GoldenAnswer(f"q{i}", f"question {i}?", i % 2, CONTEXTS[i % 2][:5], 0, 5) for i in range(count)
    )
    return Golden("onnx-fp32", "probes@abc", 0.95, CONTEXTS, answers)


MINIMAL = {
    "format_version": 1,
    "model": {"name": "m", "revision": "r"},
    "files": [{"key": "config.json", "size": 2, "sha256": "0" * 64, "variants": ["torch"]}],
}


def _minimal(**extra: Any) -> bytes:
    return json.dumps({**MINIMAL, **extra}).encode()


def test_round_trips_through_the_manifest() -> None:
    base = Manifest.from_json(_minimal())
    manifest = Manifest(base.name, base.revision, base.files, golden=golden())
    again = Manifest.from_json(manifest.to_json())
    assert again.golden == golden()
    assert again == manifest
    assert Manifest.from_json(_minimal()).golden is None  # manifests from before golden answers


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: {**d, "threshold": 1.5}, "threshold"),
        (lambda d: {**d, "answers": []}, "non-empty"),
        (lambda d: {**d, "answers": [{**d["answers"][0], "start": 1}]}, "not the context"),
        (lambda d: {**d, "answers": [{**d["answers"][0], "context": 7}]}, "no context 7"),
        (lambda d: {**d, "answers": [{**d["answers"][0], "end": "5"}]}, "integers"),
        (lambda d: {**d, "contexts": "text"}, "contexts"),
    ],
)
def test_a_malformed_golden_section_is_a_manifest_error(mutate: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(_minimal(golden=mutate(golden().to_dict())))


def test_sample_spreads_over_the_set() -> None:
    answers = golden(10)
    assert [a.id for a in answers.sample(5)] == ["q0", "q2", "q4", "q6", "q8"]
    assert answers.sample(None) == answers.sample(50) == answers.answers
