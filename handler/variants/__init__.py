"""Backend variants: one module per variant in this package, each declaring ``VARIANT``; nothing else lists them.

A variant is what a published model directory can be served as (its manifest name), which weight files only it
reads, how the function loads it and how the publish tooling builds it. Settings, the manifest, the model store,
the backends and ``qa_tools`` all read this registry, so adding a variant is adding a module here (plus its
loader or builder if they are new). Loaders and builders are named as ``"module:function"`` strings and imported
only when used: the registry itself imports neither torch nor onnxruntime, and the serving image never imports a
builder (``qa_tools`` is not in the image).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from handler.errors import ConfigurationError

# QA_<BACKEND>_PRECISION=auto, as unset: the CPU's int8 flags choose (Variant.preferred_on), else the default.
AUTO = "auto"


@dataclass(frozen=True)
class Variant:
    name: str  # as written in manifests and cache directory names, e.g. "onnx-int8"
    backend: str  # the QA_BACKEND value that selects it
    precision: str  # selected by QA_<BACKEND>_PRECISION, e.g. QA_ONNX_PRECISION=int8
    weights: tuple[str, ...]  # regexes of file names only this variant reads; other files serve every variant
    loader: str  # "module:function" (files, variant, threads) -> Backend, imported only when chosen
    builder: str | None = (
        None  # "module:function" (model_dir, out_dir) -> Path in qa_tools; None: shipped as-is
    )
    weight_file: str = ""  # the file the loader opens, when it opens one file
    default: bool = False  # the precision QA_BACKEND alone selects
    # Lossy variants name the variant whose answers they approximate: publish measures the share of identical
    # answer spans on its probe set (qa_tools.fidelity), records it in the manifest and gates on it.
    reference: str | None = None
    published_by_default: bool = True  # publish builds it when --variants is not given
    # int8 flags (handler.hardware.cpu.INT8_FLAGS): with the precision variable unset, a CPU with any of them is
    # served this variant instead of the default, when the published model has it (else the default).
    preferred_on: tuple[str, ...] = ()

    @property
    def precision_env(self) -> str:
        return precision_env(self.backend)

    def owns(self, file_name: str) -> bool:
        return any(re.fullmatch(pattern, file_name) for pattern in self.weights)

    def load(self, *args: Any, **kwargs: Any) -> Any:
        return resolve(self.loader)(*args, **kwargs)


def precision_env(backend: str) -> str:
    """The variable that picks a backend's precision: QA_ONNX_PRECISION for onnx."""
    return f"QA_{backend.upper()}_PRECISION"


def resolve(reference: str) -> Any:
    """Imports ``"package.module:attribute"`` on first use."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _discover() -> dict[str, Variant]:
    found: dict[str, Variant] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        variant = importlib.import_module(f"{__name__}.{info.name}").VARIANT
        if variant.name in found:
            raise RuntimeError(f"variant {variant.name!r} is declared twice")
        found[variant.name] = variant
    return found


VARIANTS: dict[str, Variant] = _discover()
NAMES: tuple[str, ...] = tuple(VARIANTS)
PUBLISHED_BY_DEFAULT: tuple[str, ...] = tuple(n for n, v in VARIANTS.items() if v.published_by_default)
# The QA_BACKEND values: also the image's Dockerfile targets and the choices of every --backend option.
BACKENDS: tuple[str, ...] = tuple(sorted({v.backend for v in VARIANTS.values()}))


def precisions(backend: str) -> tuple[str, ...]:
    """The values QA_<BACKEND>_PRECISION accepts for ``backend``, sorted: its variants' precisions, and ``auto``
    where a variant is preferred on some CPUs."""
    own = [v for v in VARIANTS.values() if v.backend == backend]
    return tuple(sorted([v.precision for v in own] + ([AUTO] if any(v.preferred_on for v in own) else [])))


def default_for(backend: str) -> Variant:
    """The variant QA_BACKEND=``backend`` selects when its precision variable is unset."""
    return select(backend, None)


def get(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(NAMES)}") from None


def select(backend: str, precision: str | None, int8: Collection[str] = ()) -> Variant:
    """The variant QA_BACKEND and its precision variable name; a mistake names the variable and the choices.

    ``int8``: the CPU's int8 flags; with ``precision`` None or ``auto``, a variant preferred on one of them
    wins over the default (``preferred_on``).
    """
    candidates = [v for v in VARIANTS.values() if v.backend == backend]
    if not candidates:
        raise ConfigurationError(f"QA_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision is None or (precision == AUTO and AUTO in precisions(backend)):
        precision = None
        for variant in candidates:
            if set(variant.preferred_on) & set(int8):
                return variant
    for variant in candidates:
        if (precision is None and variant.default) or variant.precision == precision:
            return variant
    choices = ", ".join(precisions(backend))
    raise ConfigurationError(f"{precision_env(backend)} must be one of {choices}, got {precision!r}")


def owner_of(file_name: str) -> tuple[str, ...]:
    """The variants that need a file: the one whose weights it is, else all of them."""
    owners = tuple(v.name for v in VARIANTS.values() if v.owns(file_name))
    return owners or NAMES
