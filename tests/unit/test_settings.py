"""Settings from the environment: defaults, and every mistake failing init by the variable's name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from handler.errors import ConfigurationError
from handler.hardware import cpu
from handler.settings import Settings
from handler.store.s3 import S3Location
from qa_tools.emulation.machines import GRAVITON2_CPUINFO
from tests.fixtures.cpuinfo import X86_AMX, X86_AVX2, X86_VNNI

ALL = (
    "MODEL_S3_URI",
    "MODEL_LOCAL_PATH",
    "MODEL_DIR",
    "QA_BACKEND",
    "QA_ONNX_PRECISION",
    "QA_TORCH_PRECISION",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def test_defaults(env: pytest.MonkeyPatch) -> None:
    env.setenv("MODEL_S3_URI", "s3://bucket/models/x")
    settings = Settings.from_env()
    assert settings.model_source == S3Location("bucket", "models/x/")
    assert settings.model_dir == Path("/tmp/models")
    assert settings.variant.name == "torch"
    assert (settings.max_body_bytes, settings.max_context_chars, settings.max_batch_size) == (
        1_000_000,
        100_000,
        32,
    )


def test_a_model_in_the_image_wins_over_s3(env: pytest.MonkeyPatch, model_dir: Path) -> None:
    env.setenv("MODEL_S3_URI", "s3://bucket/models/x/")
    env.setenv("MODEL_LOCAL_PATH", str(model_dir))
    assert Settings.from_env().model_source == model_dir


@pytest.mark.parametrize(
    ("backend", "precision", "variant"),
    [
        ("onnx", "fp32", "onnx-fp32"),
        ("ONNX", "INT8", "onnx-int8"),
        ("torch", None, "torch"),
    ],
)
def test_backend_and_precision_select_a_variant(
    env: pytest.MonkeyPatch, model_dir: Path, backend: str, precision: str | None, variant: str
) -> None:
    env.setenv("MODEL_LOCAL_PATH", str(model_dir))
    env.setenv("QA_BACKEND", backend)
    if precision:
        env.setenv("QA_ONNX_PRECISION", precision)
    assert Settings.from_env().variant.name == variant


@pytest.mark.parametrize(
    ("precision", "cpuinfo", "variant", "fallback"),
    [
        (None, X86_AVX2, "onnx-int8", None),  # MatMulNBits where no int8 dot product: nothing to fall back to
        (None, X86_VNNI, "onnx-int8-qgemm", "onnx-int8"),
        ("auto", X86_AMX, "onnx-int8-qgemm", "onnx-int8"),  # the template's default
        ("auto", GRAVITON2_CPUINFO.read_text(), "onnx-int8", None),
        ("int8", X86_AMX, "onnx-int8", None),  # a named precision is obeyed on any CPU
        ("int8-qgemm", X86_AVX2, "onnx-int8-qgemm", None),
    ],
)
def test_the_cpu_chooses_the_int8_recipe_unless_one_is_named(
    env: pytest.MonkeyPatch,
    model_dir: Path,
    tmp_path: Path,
    precision: str | None,
    cpuinfo: str,
    variant: str,
    fallback: str | None,
) -> None:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    env.setattr(cpu, "CPUINFO", tmp_path / "cpuinfo")
    env.setenv("MODEL_LOCAL_PATH", str(model_dir))
    env.setenv("QA_BACKEND", "onnx")
    if precision:
        env.setenv("QA_ONNX_PRECISION", precision)
    settings = Settings.from_env()
    assert settings.variant.name == variant
    assert (settings.fallback.name if settings.fallback else None) == fallback


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "MODEL_S3_URI"),
        ({"MODEL_S3_URI": "bucket/x"}, "MODEL_S3_URI"),
        ({"MODEL_S3_URI": "https://bucket/x"}, "MODEL_S3_URI"),
        ({"MODEL_LOCAL_PATH": "/does/not/exist"}, "MODEL_LOCAL_PATH"),
        ({"MODEL_S3_URI": "s3://b/p/", "QA_BACKEND": "tensorflow"}, "QA_BACKEND"),
        (
            {"MODEL_S3_URI": "s3://b/p/", "QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int4"},
            "QA_ONNX_PRECISION",
        ),
        ({"MODEL_S3_URI": "s3://b/p/", "MAX_WINDOWS": "many"}, "MAX_WINDOWS"),
        ({"MODEL_S3_URI": "s3://b/p/", "MAX_BATCH_SIZE": "0"}, "MAX_BATCH_SIZE"),
    ],
)
def test_mistakes_fail_init_naming_the_variable(
    env: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: _file(root / "config.json"), "is a file, not a model directory"),
        (lambda root: root, "is not a model directory (no config.json)"),
    ],
)
def test_a_model_local_path_that_is_no_model_says_what_it_is(
    env: pytest.MonkeyPatch, tmp_path: Path, make: Callable[[Path], Path], says: str
) -> None:
    path = make(tmp_path)
    env.setenv("MODEL_LOCAL_PATH", str(path))
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env()
    assert str(raised.value) == f"MODEL_LOCAL_PATH={path} {says}"


def _file(path: Path) -> Path:
    path.write_text("{}")
    return path
