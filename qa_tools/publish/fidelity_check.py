"""The fidelity gate at publish: each lossy variant measured against its reference on the probe set
(``qa_tools.fidelity``), reported, and refused below the threshold unless ``allow_lossy``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from handler import variants as registry
from qa_tools.fidelity import gate
from qa_tools.publish.build import build
from qa_tools.publish.log import log


def check_fidelity(
    model_dir: Path, staging: Path, variants: Sequence[str], threshold: float, *, allow_lossy: bool
) -> dict[str, gate.Fidelity]:
    """Lossy variants against their references, served from the model and everything built (the reference's
    export included, even when only the lossy variant is published)."""
    lossy = gate.lossy(variants)
    if not lossy:
        return {}
    references = [str(v.reference) for v in lossy]
    built = staging / "built"
    build(model_dir, built, [r for r in references if not (built / registry.get(r).weight_file).exists()])
    served = staging / "served"
    served.mkdir()
    for path in [*built.iterdir(), *model_dir.iterdir()]:  # a fresh build over a stale export in the source
        if path.is_file() and not path.name.startswith(".") and not (served / path.name).exists():
            (served / path.name).symlink_to(path.resolve())
    log(f"measuring {', '.join(v.name for v in lossy)} against {', '.join(sorted(set(references)))} ...")
    results = gate.measure(served, [v.name for v in lossy], threshold=threshold)
    for f in results.values():
        verdict = "passed" if f.passed else "BELOW THE THRESHOLD"
        log(
            f"  {f.variant}: the same answer as {f.reference} on {f.same}/{f.count} probes ({f.share:.1%}), {verdict}"
        )
    gate.enforce(results, allow_lossy=allow_lossy)
    return results
