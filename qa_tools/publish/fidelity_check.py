"""The fidelity gate at publish: each lossy variant measured against its reference on the probe set
(``qa_tools.fidelity``), reported, and refused below the threshold unless ``allow_lossy``; and the reference's
answers to the probes, recorded as the manifest's golden answers (the function's self-check re-asks them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from handler import variants as registry
from handler.store import Golden
from qa_tools.fidelity import gate, golden
from qa_tools.progress import reporter
from qa_tools.publish.build import build
from qa_tools.publish.log import log


def check_fidelity(
    model_dir: Path,
    staging: Path,
    variants: Sequence[str],
    threshold: float,
    *,
    allow_lossy: bool,
    show_progress: bool = True,
) -> tuple[dict[str, gate.Fidelity], Golden | None]:
    """Lossy variants against their references, served from the model and everything built (the reference's
    export included, even when only the lossy variant is published); and the reference's golden answers."""
    lossy = gate.lossy(variants)
    if not lossy:
        return {}, None
    references = [str(v.reference) for v in lossy]
    built = staging / "built"
    build(model_dir, built, [r for r in references if not (built / registry.get(r).weight_file).exists()])
    served = staging / "served"
    served.mkdir()
    for path in [*built.iterdir(), *model_dir.iterdir()]:  # a fresh build over a stale export in the source
        if path.is_file() and not path.name.startswith(".") and not (served / path.name).exists():
            (served / path.name).symlink_to(path.resolve())
    log(f"measuring {', '.join(v.name for v in lossy)} against {', '.join(sorted(set(references)))} ...")
    shown = reporter("fidelity probes", unit="answers", enabled=show_progress)
    results = gate.measure(served, [v.name for v in lossy], threshold=threshold, progress=shown)
    for f in results.values():
        verdict = "passed" if f.passed else "BELOW THE THRESHOLD"
        log(
            f"  {f.variant}: the same answer as {f.reference} on {f.same}/{f.count} probes ({f.share:.1%}), {verdict}"
        )
    gate.enforce(results, allow_lossy=allow_lossy)
    log(f"recording {references[0]}'s answers to the probes (the function's self-check re-asks them) ...")
    return results, golden.record(served, references[0], threshold)
