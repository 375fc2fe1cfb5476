"""The model to publish: a local directory or a Hugging Face model id, normalised (safetensors, a fast
``tokenizer.json``, the config), and the files of it that the requested variants need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from handler import variants as registry
from handler.model_files import directory_problem
from handler.store import MANIFEST_NAME, check_key, variants_for
from qa_tools.publish.log import log

# Weights the runtime never reads (pickles, TF, Flax): not uploaded, so nothing unsafe is ever loaded.
_LEGACY_WEIGHTS = (".bin", ".h5", ".msgpack", ".ot", ".pt", ".pth", ".ckpt", ".pkl")

# Variants made at publish time (exports); their files in SOURCE are never uploaded as they are.
_BUILT = {v.name for v in registry.VARIANTS.values() if v.builder}


def local_source(source: str) -> Path | None:
    """SOURCE as a local model directory; None if it names a Hub model; ValueError, at once, if it is neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        problem = directory_problem(path)
        if problem:  # before any tokenizer or model loading could fail on it less clearly
            raise ValueError(
                f"{source} {problem}; pass a directory holding config.json and the weights, or a Hugging Face "
                "model id such as deepset/roberta-base-squad2"
            )
        return path
    if path.exists() or source.count("/") > 1 or source.startswith((".", "/", "~")):
        raise ValueError(
            f"SOURCE {source!r} is neither a model directory (looked for {path.absolute()}) nor a Hugging Face "
            "model id; pass a directory holding config.json and the weights, or an id such as "
            "deepset/roberta-base-squad2"
        )
    return None


def resolve_source(source: str, revision: str | None) -> tuple[Path, str, str]:
    """A local directory, or a Hub model id fetched into the HF cache (its commit hash is the revision)."""
    path = local_source(source)
    if path is not None:
        return path, path.resolve().name, "local"
    path = Path(source).expanduser()
    from huggingface_hub import snapshot_download  # only for Hub ids: needs internet

    log(f"downloading {source} from the Hugging Face Hub ...")
    try:
        snapshot = Path(snapshot_download(source, revision=revision))
    except Exception as exc:  # the hub raises many types (offline, unknown repo, gated): one clear line
        why = " ".join(str(exc).split())[:300]
        raise ValueError(
            f"could not fetch {source!r} from the Hugging Face Hub ({type(exc).__name__}: {why}), and there is "
            f"no directory {path.absolute()}; without internet, pass a local model directory instead"
        ) from exc
    return snapshot, source, snapshot.name  # snapshots/<commit sha>


def is_normalised(model_dir: Path) -> bool:
    names = {p.name for p in model_dir.iterdir() if p.is_file()}
    has_weights = "model.safetensors" in names or "model.safetensors.index.json" in names
    return {"config.json", "tokenizer.json"} <= names and has_weights


def normalise(source: Path, out: Path) -> Path:
    """Re-save with transformers: safetensors weights, a fast tokenizer's tokenizer.json, the config."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    log(f"normalising {source} (safetensors, fast tokenizer) ...")
    tokenizer = AutoTokenizer.from_pretrained(source)  # local: Hub ids were fetched by revision  # nosec B615
    if not tokenizer.is_fast:
        raise ValueError(f"{source}: no fast tokenizer (tokenizer.json) can be built for this model")
    model = AutoModelForQuestionAnswering.from_pretrained(source)  # a local directory, as above  # nosec B615
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def select_files(model_dir: Path, variants: Sequence[str]) -> dict[str, Path]:
    """Top-level files the requested variants need; a built variant's files are always rebuilt, never copied."""
    chosen: dict[str, Path] = {}
    for path in sorted(model_dir.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name == MANIFEST_NAME:
            continue  # a warmed copy as SOURCE: its manifest and marker are rebuilt, not uploaded
        needed_by = set(variants_for(path.name))
        if path.suffix in _LEGACY_WEIGHTS:
            log(f"  left out {path.name}: pickle or TF weights, which the function never loads")
        elif needed_by <= _BUILT:
            log(f"  left out {path.name}: {', '.join(sorted(needed_by))} files are rebuilt from the model")
        elif not needed_by & set(variants):
            needs = ", ".join(sorted(needed_by))
            log(f"  left out {path.name}: only {needs} reads it, and this publish is {', '.join(variants)}")
        else:
            chosen[check_key(path.name)] = path
    return chosen
