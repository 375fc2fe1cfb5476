"""docs/architecture.md's module table matches the tree: every module under handler/, qa_tools/ and bench/ has a
row, and every row names a file or package that exists. A renamed, moved or new module fails here until the
table says so, so the layout a maintainer reads first cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures import ROOT

PAGE = ROOT / "docs" / "architecture.md"
PACKAGES = ("handler", "qa_tools", "bench")
HEADER = re.compile(r"^\|\s*module\s*\|\s*job\s*\|\s*$", re.IGNORECASE)
ROW_PATH = re.compile(r"^\|\s*`([^`]+)`\s*\|")
MENTION = re.compile(r"(?<![\w/.])((?:[\w]+/)*\w+\.py)\b")


def table_rows(markdown: str) -> list[str]:
    """The paths in the first column of the page's `| module | job |` table, in order."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if HEADER.match(line)), None)
    assert start is not None, "no `| module | job |` table on the page"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = ROW_PATH.match(line)
        assert match, f"a table row without a `path` in its first cell: {line}"
        rows.append(match.group(1))
    return rows


def tree(root: Path) -> set[str]:
    """Every module (``*.py`` but ``__init__.py``) and package (``dir/``) under PACKAGES, relative to root."""
    found = set()
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(root)
            if path.name == "__init__.py":
                found.add(f"{relative.parent.as_posix()}/")
            else:
                found.add(relative.as_posix())
    return found


def drift(rows: list[str], root: Path) -> tuple[set[str], set[str]]:
    """(modules or packages without a row, rows naming nothing that exists)."""
    stale = {
        row for row in rows if not ((root / row).is_dir() if row.endswith("/") else (root / row).is_file())
    }
    return tree(root) - set(rows), stale


def test_the_table_lists_every_module_and_names_only_what_exists() -> None:
    rows = table_rows(PAGE.read_text())
    missing, stale = drift(rows, ROOT)
    assert not missing, f"docs/architecture.md has no row for {sorted(missing)}: add one saying what it does"
    assert not stale, (
        f"docs/architecture.md names {sorted(stale)}, which do not exist: rename or remove the rows"
    )
    duplicates = sorted({row for row in rows if rows.count(row) > 1})
    assert not duplicates, f"docs/architecture.md lists {duplicates} more than once"


def test_modules_named_elsewhere_on_the_page_exist() -> None:
    """The diagram and the text name modules by short paths (``api/http.py``, ``test_decoding.py``): each must
    be the tail of a table row or of a test file."""
    text = PAGE.read_text()
    known = [*table_rows(text), *(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py"))]
    outside_table = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    named = set(MENTION.findall(outside_table))
    assert named, "the page names no module outside the table: has the pattern broken?"
    unknown = sorted(n for n in named if not any(k == n or k.endswith(f"/{n}") for k in known))
    assert not unknown, f"docs/architecture.md names {unknown}, which are neither a table row nor a test file"


def test_drift_is_seen_both_ways(tmp_path: Path) -> None:
    for module in ("handler/__init__.py", "handler/app.py", "handler/api/__init__.py", "handler/api/new.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    (tmp_path / "handler" / "__pycache__").mkdir()
    (tmp_path / "handler" / "__pycache__" / "app.py").write_text("")
    page = "| module | job |\n|---|---|\n| `handler/` | p |\n| `handler/app.py` | a |\n| `handler/old.py` | o |\n"
    missing, stale = drift(table_rows(page), tmp_path)
    assert missing == {"handler/api/", "handler/api/new.py"}
    assert stale == {"handler/old.py"}
