"""The ONNX image's serving path end to end, on whatever interpreter runs the tests.

scripts/test-onnx.sh runs this on the image's Python (3.12) in a virtualenv holding requirements-onnx.lock and
the test tools only, so torch and transformers are not even installed; here they are also blocked from being
imported, so the same test holds in the full dev environment. A model built without torch is published to a
local S3 with a manifest, and a fresh process initialises handler.app as the onnx image does and answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handler.store.manifest import MANIFEST_NAME, Manifest
from qa_tools.tiny_models import END_WORD, START_WORD
from tests.fixtures import ROOT
from tests.fixtures.onnx_models import build_planted_onnx
from tests.fixtures.s3 import Bucket

PREFIX = "models/planted-onnx/"
NOT_IN_IMAGE = ("torch", "transformers")

# Lambda's init and one invoke, in a process that cannot import what the onnx image does not install.
_SERVE = """
import importlib.abc, json, sys

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in sys.argv[2].split(","):
            raise ModuleNotFoundError(f"{name} is not installed in the onnx image")

sys.meta_path.insert(0, NotInImage())
from handler.app import lambda_handler
from tests.fixtures.lambda_env import FakeContext

print(json.dumps(lambda_handler(json.loads(sys.argv[1]), FakeContext())))
"""


@pytest.fixture(scope="module")
def planted_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_planted_onnx(tmp_path_factory.mktemp("planted-onnx"))


def _publish(model_dir: Path, bucket: Bucket) -> str:
    """Uploads every file, then the manifest last, as qa_tools.publish does (it needs torch to export)."""
    files = {p.name: p for p in model_dir.iterdir() if p.is_file()}
    for key, path in files.items():
        bucket.put(PREFIX + key, path.read_bytes())
    bucket.put(PREFIX + MANIFEST_NAME, Manifest.build("planted-onnx", "test", files).to_json())
    return bucket.uri(PREFIX)


def _invoke(event: dict, tmp_path: Path, **env: str) -> dict:
    environment = {
        **os.environ,
        "QA_BACKEND": "onnx",  # what the Dockerfile's onnx target sets
        "MODEL_DIR": str(tmp_path / "models"),
        "POWERTOOLS_TRACE_DISABLED": "1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    environment.pop("MODEL_LOCAL_PATH", None)
    result = subprocess.run(
        [sys.executable, "-c", _SERVE, json.dumps(event), ",".join(NOT_IN_IMAGE)],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_the_onnx_image_answers_from_a_published_model(
    planted_onnx: Path, s3_bucket: Bucket, tmp_path: Path, precision: str
) -> None:
    context = f"My name is Wolfgang and I live near the old {START_WORD} bridge by the {END_WORD} in Berlin."
    answer = _invoke(
        {"question": "Where do I live?", "context": context},
        tmp_path,
        MODEL_S3_URI=_publish(planted_onnx, s3_bucket),
        QA_ONNX_PRECISION=precision,
    )
    expected = context[context.index(START_WORD) : context.index(END_WORD) + len(END_WORD)]
    assert answer["answer"] == expected
    assert context[answer["start"] : answer["end"]] == expected


def test_the_onnx_image_reports_its_backend(planted_onnx: Path, s3_bucket: Bucket, tmp_path: Path) -> None:
    event = json.loads((ROOT / "events" / "rest-health.json").read_text())
    response = _invoke(event, tmp_path, MODEL_S3_URI=_publish(planted_onnx, s3_bucket))
    health = json.loads(response["body"])
    assert response["statusCode"] == 200, health
    assert health["backend"] == "onnx-int8"
    assert health["model"] == "planted-onnx"
