"""Build the repository's embedded model folder from a full-precision model: ``python -m qa_tools.embedded_model SRC``.

The repository ships one small, real extractive-QA model (``qa_tools.EMBEDDED_MODEL``) so that the quick start
answers offline on a fresh clone. Its weights are stored in half precision (half the bytes in every clone) while
``config.json`` keeps ``"dtype": "float32"``: the torch backend and the ONNX export load it with
``dtype=torch.float32``, which upcasts each tensor on load, so every backend computes in fp32 from weights that
differ from the original by fp16 rounding only (bench/embedded_model.py measures that the spans stay the same).

Build-time tooling, never imported by the function. Re-running on the same source writes identical bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from qa_tools import EMBEDDED_MODEL

WEIGHTS = "model.safetensors"
# Copied as they are: the config (its dtype stays float32, the precision the backends compute in) and the
# fast tokenizer. Weights in any other form are not copied.
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
STORED_DTYPE = torch.float16
_FP16_MAX = torch.finfo(torch.float16).max


@dataclass(frozen=True)
class Conversion:
    tensors: int
    parameters: int
    bytes_written: int
    max_abs_error: float  # largest |fp16(w) - w| over every weight


def to_half(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
    """Floating-point tensors in fp16 (integer buffers untouched); refuses a value fp16 cannot hold."""
    half: dict[str, torch.Tensor] = {}
    worst = 0.0
    for name, tensor in weights.items():
        if not tensor.is_floating_point():
            half[name] = tensor
            continue
        peak = float(tensor.abs().max()) if tensor.numel() else 0.0
        if peak > _FP16_MAX:
            raise ValueError(f"{name}: |value| {peak:g} exceeds float16's range; store this model in fp32")
        rounded = tensor.to(STORED_DTYPE).contiguous()
        worst = max(worst, float((rounded.float() - tensor.float()).abs().max()) if tensor.numel() else 0.0)
        half[name] = rounded
    return half, worst


def convert(source: Path, dest: Path) -> Conversion:
    """Writes ``dest``: the copied files, and the weights of ``source/model.safetensors`` in fp16."""
    source, dest = Path(source), Path(dest)
    config = json.loads((source / "config.json").read_text())
    if config.get("dtype", config.get("torch_dtype", "float32")) != "float32":
        raise ValueError(
            f"{source}/config.json: expected dtype float32, the precision the backends compute in"
        )
    if not (source / WEIGHTS).is_file() or not (source / "tokenizer.json").is_file():
        raise ValueError(f"{source}: needs {WEIGHTS} and tokenizer.json (publish normalises other layouts)")
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
    weights = load_file(str(source / WEIGHTS))
    half, worst = to_half(weights)
    save_file(half, str(dest / WEIGHTS), metadata={"format": "pt"})
    return Conversion(
        tensors=len(half),
        parameters=sum(t.numel() for t in half.values()),
        bytes_written=(dest / WEIGHTS).stat().st_size,
        max_abs_error=worst,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qa_tools.embedded_model", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "source", type=Path, help="a model directory with fp32 model.safetensors and tokenizer.json"
    )
    parser.add_argument(
        "dest", type=Path, nargs="?", default=EMBEDDED_MODEL, help=f"(default: {EMBEDDED_MODEL})"
    )
    args = parser.parse_args(argv)
    try:
        done = convert(args.source, args.dest)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"dest": str(args.dest), **done.__dict__}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
