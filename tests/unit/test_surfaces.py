"""The public surfaces of ``handler.api`` and ``handler.store``, pinned (as httpx pins ``httpx.__all__``).

Other packages (``qa_tools``, ``bench``, ``scripts``) import these names and nothing deeper, so a module
inside either package can be split or renamed without touching them. Growing or shrinking a surface is a
decision: it edits the list here.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SURFACES: dict[str, list[str]] = {
    "handler.api": [
        "GOLD",
        "ID",
        "ROUTES",
        "BatchDefaults",
        "Prepared",
        "Shape",
        "answer_batch",
        "describe_errors",
        "detect_shape",
        "handle_batch",
        "handle_direct",
        "handle_http",
        "item_id",
        "prepare_item",
    ],
    "handler.store": [
        "MANIFEST_NAME",
        "FileEntry",
        "Golden",
        "GoldenAnswer",
        "Manifest",
        "ManifestError",
        "ModelStoreError",
        "S3Location",
        "WarmupReport",
        "check_key",
        "choose_store",
        "error_code",
        "make_client",
        "open_baked",
        "sha256_file",
        "variants_for",
        "warm_from_s3",
        "warm_into_memory",
        "warm_model",
    ],
}
# The one deeper import allowed outside the package: the download benchmark tunes the downloader itself.
ALLOWED_DEEP = {("bench/download.py", "handler.store.download")}
CALLERS = ("qa_tools", "bench", "scripts")


@pytest.mark.parametrize("package", SURFACES)
def test_the_surface_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == SURFACES[package]


@pytest.mark.parametrize("package", SURFACES)
def test_every_exported_name_is_there(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def deep_imports(path: Path) -> list[str]:
    """Modules under ``handler.api`` / ``handler.store`` (not the packages themselves) that ``path`` imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module in SURFACES:  # `from handler.store import download` names a module, too
                names += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if a.name not in SURFACES[node.module] and a.name != "*"
                ]
        found += [n for n in names if any(n.startswith(f"{p}.") for p in SURFACES)]
    return found


def test_callers_import_the_surfaces_only() -> None:
    deep = [
        f"{path.relative_to(ROOT)}: {module}"
        for caller in CALLERS
        for path in sorted((ROOT / caller).rglob("*.py"))
        for module in deep_imports(path)
        if (str(path.relative_to(ROOT)), module) not in ALLOWED_DEEP
    ]
    assert deep == []


def test_a_deep_import_is_seen(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from handler.api.batch import Prepared\n"
        "from handler.store import warm_model, cache\n"
        "import handler.store.s3\n"
        "from handler.api import ROUTES\n"
    )
    assert deep_imports(probe) == ["handler.api.batch", "handler.store.cache", "handler.store.s3"]
