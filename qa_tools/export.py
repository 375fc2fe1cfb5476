"""Publish-time export of a QA model directory to ONNX: an fp32 graph and a dynamically quantized int8 copy.

Build-time code (torch, transformers, onnx, onnxscript): runs where the publish CLI runs, never in the image.
The variant registry names ``build_fp32`` and ``build_int8`` as the builders of the two ONNX variants.
The graph is captured with ``torch.onnx.export(..., dynamo=True)`` (torch.export-based, the default since
torch 2.9): the TorchScript exporter (``dynamo=False``) is deprecated and slated for removal. Both graphs are
single files (no external data) and re-exporting the same model yields identical bytes, so the publish CLI's
content hashes skip unchanged uploads.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from handler import variants
from handler.backends import available_cpus
from handler.backends.onnx_backend import OUTPUT_NAMES
from handler.backends.torch_backend import TorchBackend
from qa_tools.noise import exporter_noise, quantizer_noise

# Dynamic quantization, chosen by measurement (minilm-l6-squad on 400 xquad.en questions; fp32 EM 50.2 F1 61.0):
# per-tensor MatMul weights cost ~4 EM (46.2) while per-channel costs 0.4 (49.8); also quantizing the embedding
# Gather halves the file (roberta-base: 498 MB fp32, 243 MB MatMul-only, 126 MB with Gather) for <= 1 EM and
# no F1 loss (48.8 / 60.6), and the smaller file downloads and loads faster at cold start. Speed is the same for
# all four settings (roberta-base, 1 vCPU: int8 ~190 ms at 128 tokens vs fp32 ~270 ms and torch ~300 ms).
# ORT's quant_pre_process changed neither accuracy nor speed, so it is not run.
QUANTIZE_OP_TYPES: tuple[str, ...] = ("MatMul", "Gather")
QUANTIZE_PER_CHANNEL = True

# Example batch for tracing: 2 rows and 16 tokens, because torch.export specialises dimensions of size 0 or 1.
_EXAMPLE_BATCH, _EXAMPLE_TOKENS = 2, 16


class SpanLogits(torch.nn.Module):
    """Positional tensors in, a tuple out: what the exporter maps onto ONNX graph inputs and outputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        segments = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **segments)
        return out.start_logits, out.end_logits


def build_fp32(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-fp32 variant's file in ``out_dir``, exported from the model directory (reused if there)."""
    path = Path(out_dir) / variants.get("onnx-fp32").weight_file
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda tmp: export_fp32(Path(model_dir), tmp))
    return path


def build_int8(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8 variant's file in ``out_dir``, quantized from the fp32 export (built first if missing)."""
    fp32 = build_fp32(model_dir, out_dir)
    path = Path(out_dir) / variants.get("onnx-int8").weight_file
    _atomic_write(path, lambda tmp: quantize_int8(fp32, tmp))
    return path


@exporter_noise()
def export_fp32(model_dir: Path, path: Path) -> None:
    """Exports the reference model (loaded exactly as the torch backend loads it) with dynamic batch/sequence.

    The graph takes the torch backend's ``input_names`` (segment ids only for BERT-style models with
    ``type_vocab_size > 1``) and returns ``start_logits`` and ``end_logits``.
    """
    reference = TorchBackend(model_dir, threads=available_cpus())
    names = reference.input_names
    config = reference.model.config
    ids = torch.arange(_EXAMPLE_BATCH * _EXAMPLE_TOKENS).reshape(_EXAMPLE_BATCH, _EXAMPLE_TOKENS)
    ids = 5 + ids % max(1, config.vocab_size - 5)  # skip the ids special tokens usually take
    mask = torch.ones_like(ids)
    mask[1, _EXAMPLE_TOKENS // 2 :] = 0  # a padded row, so the traced graph is the padded-batch graph
    types = torch.zeros_like(ids)
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings():
        # Naming both axes of every input makes the exporter report each shared name as "not used": noise.
        warnings.filterwarnings("ignore", message=r".*axis name: \w+ will not be used", category=UserWarning)
        program = torch.onnx.export(
            SpanLogits(reference.model).eval(),
            tuple(example[n] for n in names),
            input_names=list(names),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=tuple({0: batch, 1: seq} for _ in names),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # only the TorchScript exporter returns None
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.save(str(path), external_data=False)


@quantizer_noise()
def quantize_int8(
    fp32: Path,
    path: Path,
    *,
    op_types: Sequence[str] = QUANTIZE_OP_TYPES,
    per_channel: bool = QUANTIZE_PER_CHANNEL,
) -> None:
    """Dynamic quantization: int8 weights stored, activations quantized per batch at run time (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        fp32, path, op_types_to_quantize=list(op_types), per_channel=per_channel, weight_type=QuantType.QInt8
    )


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """A published artifact is complete or absent: write beside it, then rename over it."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp creates 0600: an image built from these files runs as another user
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
