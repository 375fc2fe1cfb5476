"""A model's files by key: a directory on disk, or verified bytes held in memory; what the engine loads from.

The model store produces one (``handler.store``: a cache directory under MODEL_DIR, the image's model directory,
or a download kept in memory for SnapStart's 512 MB ``/tmp``), and the tokenizer, ``QAEngine.load`` and every
backend loader read through it, so both storage modes share one loading path. ``path`` lets a loader use a
file in place (ONNX Runtime and safetensors map files) when there is one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

CONFIG_FILE = "config.json"  # what makes a directory a model directory: every transformers model has one


def directory_problem(path: Path) -> str | None:
    """Why ``path`` is not a model directory, worded to follow the path ("does not exist"); None if it is one."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is a file, not a model directory"
    if not (path / CONFIG_FILE).is_file():
        return f"is not a model directory (no {CONFIG_FILE})"
    return None


class ModelFiles(ABC):
    """Read-only access to a model's files by their manifest key (``config.json``, ``model.onnx``, ...)."""

    name: str  # what the files are called in messages and, failing a configured name, the model's name

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The file's content; FileNotFoundError if the model has no such file."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def path(self, key: str) -> Path | None:
        """The file on disk, or None when the bytes exist only in memory."""

    @abstractmethod
    def file_keys(self) -> list[str]:
        """Every file's key (a relative POSIX path), sorted."""

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    @abstractmethod
    def resident_bytes(self) -> int:
        """Bytes this object keeps in memory (0 for a directory)."""

    @abstractmethod
    def release(self) -> None:
        """Drops what is held in memory once the engine has loaded (nothing for a directory)."""


class DirectoryFiles(ModelFiles):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.name = self.root.name

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def path(self, key: str) -> Path:
        return self.root / key

    def file_keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def resident_bytes(self) -> int:
        return 0

    def release(self) -> None:
        return

    def __repr__(self) -> str:
        return f"DirectoryFiles({str(self.root)!r})"


class MemoryFiles(ModelFiles):
    """Files downloaded into memory (already verified by the store); nothing of them exists on disk."""

    def __init__(self, files: Mapping[str, bytes], name: str) -> None:
        self._files = dict(files)
        self.name = name

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._files[key]
        except KeyError:
            raise FileNotFoundError(
                f"{key} is not among the model files held in memory ({self.name})"
            ) from None

    def exists(self, key: str) -> bool:
        return key in self._files

    def path(self, key: str) -> None:
        return None

    def file_keys(self) -> list[str]:
        return sorted(self._files)

    def resident_bytes(self) -> int:
        return sum(len(data) for data in self._files.values())

    def release(self) -> None:
        self._files.clear()

    def __repr__(self) -> str:
        return f"MemoryFiles({self.name!r}, {len(self._files)} files, {self.resident_bytes()} bytes)"


def as_model_files(model: ModelFiles | Path | str) -> ModelFiles:
    """Callers may still pass a model directory (tests, tooling): it becomes ``DirectoryFiles``."""
    return model if isinstance(model, ModelFiles) else DirectoryFiles(model)
