"""A model baked into the image (MODEL_LOCAL_PATH): nothing to fetch, only a check that it is whole."""

from __future__ import annotations

from pathlib import Path

from handler import variants
from handler.model_files import DirectoryFiles
from handler.store import cache
from handler.store.errors import PUBLISH_COMMAND, ModelStoreError, VariantMissing
from handler.store.manifest import MANIFEST_NAME
from handler.store.manifest_fetch import parse_manifest
from handler.store.report import WarmupReport


def open_baked(path: Path, variant: str, fallback: str | None = None) -> WarmupReport:
    """A model baked into the image: nothing to fetch; a published copy is checked for the variant's files.

    ``fallback``: the variant to serve if the directory has no ``variant`` (not published, no weight file).
    """
    name, revision, count, fidelity, golden = path.name, "", 0, None, None
    if (path / MANIFEST_NAME).is_file():  # a published copy: check the variant's files are all there
        manifest = parse_manifest((path / MANIFEST_NAME).read_bytes(), None)
        variant = manifest.serving(variant, fallback)
        needed = manifest.files_for(variant)
        missing = [f.key for f in needed if not cache.has_size(path / f.key, f.size)]
        if missing:
            raise ModelStoreError(f"MODEL_LOCAL_PATH={path}: missing or truncated for {variant}: {missing}")
        name, revision, count = manifest.name, manifest.revision, len(needed)
        fidelity, golden = manifest.fidelity.get(variant), manifest.golden
    else:
        wanted = variants.get(variant)
        if fallback and not (path / wanted.weight_file).is_file():
            variant, wanted = fallback, variants.get(fallback)
        _require_weight_file(path, wanted)
    report = WarmupReport(
        model=DirectoryFiles(path),
        variant=variant,
        source=str(path),
        model_name=name,
        revision=revision,
        manifest_sha256="",
        files=count,
        bytes=0,
        seconds=0.0,
        skipped=True,
        store="image",
        fidelity=fidelity,
        golden=golden,
    )
    report.log()
    return report


def _require_weight_file(path: Path, variant: variants.Variant) -> None:
    """A plain model directory serves the variants shipped as-is (torch); an export must be made first."""
    if not variant.weight_file or (path / variant.weight_file).is_file():
        return
    chosen = f"QA_BACKEND={variant.backend} {variant.precision_env}={variant.precision}"
    raise VariantMissing(
        f"MODEL_LOCAL_PATH={path} has no {variant.weight_file}, the file {variant.name} ({chosen}) serves: "
        f"make it with `{PUBLISH_COMMAND} {path} DIR --variants {variant.name}` and set MODEL_LOCAL_PATH=DIR, "
        "or serve this directory as it is with QA_BACKEND=torch (qa_tools.local: --target torch)"
    )
