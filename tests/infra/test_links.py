"""Every relative link in the README and docs/ resolves (file and #anchor), and every repository file
template.yaml mentions exists: a reader who follows one must land somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...
# Repository files a comment or description in template.yaml may point at: a path with a directory, or a
# document or config file (a bare `openapi.json` there is a URL path, not a file).
MENTION = re.compile(
    r"(?<![\w/.$-])((?:[\w-]+/)+[\w.-]+\.\w+|[\w.-]+\.(?:md|toml|lock|sh)|Dockerfile)(?![\w/])"
)


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
