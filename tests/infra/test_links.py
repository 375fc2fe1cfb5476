"""Every relative link in the README and docs/ resolves (file and #anchor), every repository file
template.yaml mentions exists, and every repository path the docs, comments and docstrings name exists: a
reader who follows one must land somewhere."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.fixtures import ROOT, repository_files

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...
# Repository files a comment or description in template.yaml may point at: a path with a directory, or a
# document or config file (a bare `openapi.json` there is a URL path, not a file).
MENTION = re.compile(
    r"(?<![\w/.$-])((?:[\w-]+/)+[\w.-]+\.\w+|[\w.-]+\.(?:md|toml|lock|sh)|Dockerfile)(?![\w/])"
)
# A path into the repository's own folders, as prose names one: `tests/infra/test_links.py`, `handler/store/`.
REPO_PATH = re.compile(
    r"(?<![\w/.$-])((?:handler|qa_tools|bench|tests|scripts|docs|events|\.github|\.ci)/[\w./-]*[\w/])"
)
# Paths that exist only after a command has run (benchmark output, ignored by git).
GENERATED = ("bench/results/",)
# Where prose lives: Python's docstrings and comments, and every text file but data and ignore lists.
SKIPPED_SUFFIXES = {".json", ".jsonl", ".lock", ".onnx", ".safetensors", ".bin", ".png"}


def anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", markdown), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(document: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", document.read_text()))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_relative_links_resolve(document: Path) -> None:
    relative = [link for link in links(document) if not EXTERNAL.match(link)]
    for link in relative:
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: [{link}] points at {target}, which does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target.read_text()), (
                f"{document.name}: no heading #{anchor} in {target.name}"
            )


def test_the_checker_sees_links_and_anchors() -> None:
    assert "results" in anchors((ROOT / "docs" / "performance.md").read_text())
    assert anchors("# A `b` (c)\n## A b c\n") == {"a-b-c", "a-b-c-1"}
    assert links(Path(ROOT / "README.md"))


def test_template_mentions_only_files_that_exist() -> None:
    text = (ROOT / "template.yaml").read_text()
    mentioned = set(MENTION.findall(text))
    assert mentioned, "the template mentions no repository file at all: has the pattern broken?"
    for name in mentioned:
        assert (ROOT / name).exists(), f"template.yaml mentions {name}, which does not exist"


def prose(name: str, text: str) -> str:
    """The part of a file a person reads: all of a document or config, a Python file's docstrings and comments."""
    if not name.endswith(".py"):
        return text
    strings = [
        node.value.value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    comments = [
        t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT
    ]
    return "\n".join(strings + comments)


def missing_paths(name: str, text: str, root: Path) -> set[str]:
    named = {path.rstrip(".") for path in REPO_PATH.findall(prose(name, text))}
    return {path for path in named if not path.startswith(GENERATED) and not (root / path).exists()}


def test_every_repository_path_the_prose_names_exists() -> None:
    """A moved test or module leaves docstrings, comments and pages pointing at nothing; this finds them."""
    names = [
        name
        for name in repository_files()
        if not name.startswith("models/")
        and Path(name).suffix not in SKIPPED_SUFFIXES
        and Path(name).name not in {".gitignore", ".dockerignore"}
    ]
    assert names, "not a git checkout: the check needs `git ls-files`"
    stale = {
        f"{name}: {path}"
        for name in names
        for path in missing_paths(name, (ROOT / name).read_text(errors="replace"), ROOT)
    }
    assert not stale, f"paths named in prose that do not exist: {sorted(stale)}"


def test_the_path_check_reads_prose_only(tmp_path: Path) -> None:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_here.py").write_text("")
    source = (
        '"""See tests/unit/test_here.py and tests/test_gone.py."""\n'
        "# moved to handler/old.py\n"
        'CODE = "scripts/not_prose.sh"\n'
    )
    assert missing_paths("m.py", source, tmp_path) == {"tests/test_gone.py", "handler/old.py"}
    assert missing_paths("page.md", "run `bench/results/x.json` or docs/nope.md.", tmp_path) == {
        "docs/nope.md"
    }
