"""Two runs building the same emulation cache entry at once (a test run beside a command) must both succeed."""

from __future__ import annotations

from pathlib import Path

from qa_tools.emulation.cache import move_into_cache


def _build(root: Path, name: str, content: str, *, finished: bool) -> Path:
    build = root / name
    build.mkdir()
    (build / "weights").write_text(content)
    if finished:
        (build / "ready").write_text("")
    return build


def test_a_free_entry_takes_the_build(tmp_path: Path) -> None:
    build = _build(tmp_path, "build-1", "mine", finished=True)
    move_into_cache(build, tmp_path / "entry", "ready")
    assert (tmp_path / "entry" / "weights").read_text() == "mine" and not build.exists()


def test_a_finished_entry_of_another_run_stands(tmp_path: Path) -> None:
    _build(tmp_path, "entry", "theirs", finished=True)
    build = _build(tmp_path, "build-1", "mine", finished=True)
    move_into_cache(build, tmp_path / "entry", "ready")
    assert (tmp_path / "entry" / "weights").read_text() == "theirs"
    assert build.exists()  # the caller's to delete


def test_an_unfinished_entry_is_replaced(tmp_path: Path) -> None:
    _build(tmp_path, "entry", "half", finished=False)
    build = _build(tmp_path, "build-1", "mine", finished=True)
    move_into_cache(build, tmp_path / "entry", "ready")
    assert (tmp_path / "entry" / "weights").read_text() == "mine"
