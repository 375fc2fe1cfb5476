"""handler.runtime.loader: settings to store arguments, and init's model part -- a service, or a 503 one that
names the failure -- with the store and the engine load replaced (no S3, no model, no torch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handler import variants
from handler.engine import QAEngine
from handler.runtime import loader
from handler.store import S3Location, WarmupReport, open_baked
from qa_tools.tiny_models import END_WORD, START_WORD
from tests.unit.conftest import UNIT_SETTINGS

# A variant whose backend module is cheap to import: what init imports while the download runs.
CHEAP = dataclasses.replace(variants.get("onnx-int8"), loader="handler.backends:load_backend")


class Released:
    """Stands in for the model files: records that the loader let go of them."""

    def __init__(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True


def report(tmp_path: Path, **changes: Any) -> WarmupReport:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / CHEAP.weight_file).write_bytes(b"")  # the file the variant serves: a baked export
    return dataclasses.replace(open_baked(tmp_path, CHEAP.name), model=Released(), **changes)  # type: ignore[arg-type]


def test_s3_settings_go_to_the_store_as_plain_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(loader, "warm_from_s3", lambda *args, **kwargs: seen.update(args=args, kwargs=kwargs))
    location = S3Location("models", "qa/")
    settings = dataclasses.replace(UNIT_SETTINGS, model_source=location, model_store="memory", snapstart=True)
    loader.warm_from_settings(settings)
    assert seen == {
        "args": (location, UNIT_SETTINGS.model_dir, "torch"),
        "kwargs": {"mode": "memory", "snapstart": True, "fallback": None},
    }
    onnx = dataclasses.replace(
        settings, variant=variants.get("onnx-int8-qgemm"), fallback=variants.get("onnx-int8")
    )
    loader.warm_from_settings(onnx)
    assert seen["args"][2] == "onnx-int8-qgemm" and seen["kwargs"]["fallback"] == "onnx-int8"


def test_a_local_path_is_the_baked_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    got = loader.warm_from_settings(dataclasses.replace(UNIT_SETTINGS, model_source=tmp_path))
    assert (got.store, got.model_dir) == ("image", tmp_path)


@pytest.fixture
def settings() -> Any:
    return dataclasses.replace(UNIT_SETTINGS, variant=CHEAP)


def test_a_loaded_model_makes_a_ready_service(
    tmp_path: Path,
    settings: Any,
    planted_engine: Callable[..., QAEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warmed = report(tmp_path, fidelity={"share": 0.98, "passed": True})
    engine = planted_engine()
    loads: list[Any] = []
    monkeypatch.setattr(loader, "warm_from_settings", lambda s: warmed)
    monkeypatch.setattr(QAEngine, "load", staticmethod(lambda *a, **k: loads.append((a, k)) or engine))
    service = loader.ModelLoading(settings).service()
    assert service.engine is engine and warmed.model.released  # type: ignore[attr-defined]
    assert loads == [((warmed.model, CHEAP), {"max_batch_windows": settings.max_batch_windows})]
    assert service.info["source"] == "image" and service.info["store"] == "image"
    assert service.info["fidelity"] == {"share": 0.98, "passed": True}
    assert service.budget.ms_per_window is not None  # the warm-up inference's time: the first estimate
    context = f"a {START_WORD} b {END_WORD} c"
    assert service.health()["status"] == "ok"
    assert engine.answer([("q", context)])[0][0].answer == f"{START_WORD} b {END_WORD}"


def test_the_fallback_serves_when_the_store_found_only_it(
    tmp_path: Path,
    planted_engine: Callable[..., QAEngine],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CPU chose onnx-int8-qgemm, the model has only onnx-int8: that one is loaded, named and logged."""
    chosen = variants.get("onnx-int8-qgemm")
    settings = dataclasses.replace(UNIT_SETTINGS, variant=chosen, fallback=CHEAP)
    warmed = report(tmp_path)  # what the store found: CHEAP's files
    engine = planted_engine()
    loads: list[Any] = []
    monkeypatch.setattr(loader, "warm_from_settings", lambda s: warmed)
    monkeypatch.setattr(QAEngine, "load", staticmethod(lambda *a, **k: loads.append(a) or engine))
    with caplog.at_level("WARNING"):
        service = loader.ModelLoading(settings).service()
    assert loads == [(warmed.model, CHEAP)] and service.engine is engine
    assert f"has no {chosen.name}" in caplog.text and f"serving {CHEAP.name}" in caplog.text


def test_a_model_that_fails_to_load_gives_a_503_service(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed = report(tmp_path)

    def broken(*_: Any, **__: Any) -> QAEngine:
        raise MemoryError

    monkeypatch.setattr(loader, "warm_from_settings", lambda s: warmed)
    monkeypatch.setattr(QAEngine, "load", staticmethod(broken))
    service = loader.ModelLoading(settings).service()
    assert service.engine is None and "MemoryError" in service.unavailable
    assert warmed.model.released  # type: ignore[attr-defined]
    assert service.health() == {"status": "unavailable", "error": service.unavailable}


def test_a_store_failure_gives_a_503_service_naming_it(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handler.store import ModelStoreError

    def failing(_: Any) -> WarmupReport:
        raise ModelStoreError("nothing is published")

    monkeypatch.setattr(loader, "warm_from_settings", failing)
    service = loader.load_service(settings)
    assert service.engine is None and "ModelStoreError" in service.unavailable
    assert "nothing is published" not in service.unavailable  # the detail goes to the logs only


@pytest.mark.parametrize(
    ("name", "measured", "expected"),
    [
        ("torch", None, None),  # exact: nothing to say
        ("onnx-int8", {"share": 0.98}, {"share": 0.98}),
        ("onnx-int8", None, "not measured (published before fidelity was recorded)"),
    ],
)
def test_fidelity_says_what_health_reports(name: str, measured: Any, expected: Any) -> None:
    assert loader.fidelity(variants.get(name), measured) == expected
