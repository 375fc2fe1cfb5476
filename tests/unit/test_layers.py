"""The serving package's layers: an import in ``handler/`` may only run down, never back up.

``LAYERS`` is the order, top first. A unit is a subpackage (``handler/api/``) or a top-level module
(``handler/service.py``); modules inside one unit import each other freely. A unit may import units of lower
layers only: not a higher layer, and not another unit of its own layer (those stand side by side). Every
import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import still ties the layers.
A new module must be placed here, or the test fails naming it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HANDLER = Path(__file__).resolve().parents[2] / "handler"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"app"}),  # the Lambda entry point: init, then dispatch on the event's shape
    frozenset({"runtime", "api"}),  # init glue (reads the settings) | event adapters
    frozenset({"service"}),  # limits, time budget, one answer path
    frozenset({"contract"}),  # request and response models
    frozenset({"settings"}),  # every environment variable, validated
    frozenset({"answer_cache"}),  # answers already given, keyed by everything that decides them
    frozenset({"engine", "store"}),  # tokenization + backend + decoding | a published model made local
    frozenset({"backends"}),  # torch / ONNX Runtime behind one protocol
    frozenset({"variants"}),  # the registry of backend variants
    frozenset({"errors", "model_files", "observability", "hardware"}),  # leaves (hardware: CPU, its share)
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str | None:
    """``handler.api.http`` -> ``api``; ``handler`` itself (its ``__init__``) is no unit."""
    parts = module.split(".")
    return parts[1] if parts[0] == "handler" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = path.relative_to(HANDLER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module the source imports, with its line; ``from handler import variants`` names ``handler.variants``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "handler":
                found += [(node.lineno, f"handler.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def upward_imports(module: str, source: str) -> list[str]:
    """The imports of ``module`` (its text is ``source``) that run up a layer or sideways within one."""
    here = unit_of(module)
    if here is None:
        return []
    if here not in LEVEL:
        return [f"{module} has no place in LAYERS"]
    problems: list[str] = []
    for line, target in imported_modules(source):
        there = unit_of(target)
        if there is None or there == here:
            continue
        if there not in LEVEL:
            problems.append(f"{module}:{line} imports {target}, whose module has no place in LAYERS")
        elif LEVEL[there] <= LEVEL[here]:
            problems.append(
                f"{module}:{line} ({here}, layer {LEVEL[here]}) imports {target} (layer {LEVEL[there]})"
            )
    return problems


def handler_files() -> list[Path]:
    return sorted(HANDLER.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in handler_files()} - {None}
    assert units - LEVEL.keys() == set(), "place the new module in LAYERS"
    assert LEVEL.keys() - units == set(), "LAYERS names a module that no longer exists"


def test_no_import_runs_back_up_a_layer() -> None:
    problems = [msg for p in handler_files() for msg in upward_imports(module_name(p), p.read_text())]
    assert problems == []


@pytest.mark.parametrize(
    ("source", "upward"),
    [
        ("from handler.settings import Settings\n", True),  # store -> settings runs up
        ("from handler import settings\n", True),
        ("def f():\n    import handler.api.http\n", True),  # a lazy import counts
        ("from handler.engine import QAEngine\n", True),  # a unit of the same layer
        ("from handler.store.cache import entry_dir\n", False),  # inside the unit
        ("from handler.variants import get\n", False),  # down
        ("import json\n", False),
        ("from handler.newcomer import x\n", True),  # a module not yet placed in LAYERS
    ],
)
def test_the_check_sees_an_upward_import(source: str, upward: bool) -> None:
    problems = upward_imports("handler.store.probe", source)
    assert bool(problems) is upward, problems
