"""The README and the docs site's home page (docs/index.md) say the same thing and lead to every page.

GitHub shows the README, the site shows docs/index.md: the introduction and the two commands are written in
both, so a test keeps them equal; and a page that neither lists is a page nobody finds."""

from __future__ import annotations

import re

from tests.fixtures import ROOT

README = ROOT / "README.md"
HOME = ROOT / "docs" / "index.md"
PAGE_LINK = re.compile(r"\]\((?:docs/)?([\w-]+\.md)\)")
# The README says what it is, the two commands, a short tour and where to go next; features live in docs/.
README_MAX_LINES = 200


def shared_part(readme: str, home: str) -> tuple[str, str]:
    """What both say: the README up to its local tour (links into docs/ made relative to docs/), the home page
    up to its page list."""
    return readme.split("## A five-minute local tour", 1)[0].replace("](docs/", "]("), home.split(
        "## The pages", 1
    )[0]


def listed_pages(markdown: str, heading: str) -> set[str]:
    return set(PAGE_LINK.findall(markdown.split(heading, 1)[1]))


def test_readme_and_home_page_share_the_introduction_and_the_two_commands() -> None:
    readme, home = shared_part(README.read_text(), HOME.read_text())
    assert "## Two commands" in readme
    assert readme == home, "README.md and docs/index.md differ above the tour / the page list: edit both"


def test_readme_and_home_page_list_every_page() -> None:
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert listed_pages(README.read_text(), "## Where to go next") == pages
    assert listed_pages(HOME.read_text(), "## The pages") == pages - {"index.md"}


def test_the_readme_stays_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail into a docs/ page"


def test_a_difference_is_seen() -> None:
    readme = "# T\n\nSee [A](docs/a.md).\n\n## Two commands\n\nx\n\n## A five-minute local tour\n"
    assert shared_part(readme, "# T\n\nSee [A](a.md).\n\n## Two commands\n\nx\n\n## The pages\n")[0] == (
        "# T\n\nSee [A](a.md).\n\n## Two commands\n\nx\n\n"
    )
    mine, theirs = shared_part(readme, "# T\n\nSee [A](a.md).\n\n## Two commands\n\ny\n\n## The pages\n")
    assert mine != theirs
