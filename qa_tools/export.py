"""Publish-time export of a QA model directory to the fp32 ONNX graph (``qa_tools.quantize`` makes the int8 copies).

Build-time code (torch, transformers, onnx, onnxscript): runs where the publish CLI runs, never in the image.
The variant registry names ``build_fp32`` as the onnx-fp32 builder.
The graph is captured with ``torch.onnx.export(..., dynamo=True)`` (torch.export-based, the default since
torch 2.9): the TorchScript exporter (``dynamo=False``) is deprecated and slated for removal. Both graphs are
single files (no external data) and re-exporting the same model yields identical bytes, from any checkout path
(no stack traces naming it), so the publish CLI's content hashes skip unchanged uploads.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx_ir as ir
import torch

from handler import variants
from handler.backends import available_cpus
from handler.backends.onnx_backend import OUTPUT_NAMES
from handler.backends.torch_backend import TorchBackend
from qa_tools.export_log_filters import exporter_noise

_STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata key of torch.onnx.export(dynamo=True)
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
        atomic_write(path, lambda tmp: export_fp32(Path(model_dir), tmp))
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
    _drop_stack_traces(program.model)
    program.save(str(path), external_data=False)


def _drop_stack_traces(model: ir.Model) -> None:
    """The exporter notes each node's Python stack, with the absolute paths of this checkout and its venv: they
    would make the same model's bytes (and content hash) differ between machines and leak the builder's paths."""
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        node.metadata_props.pop(_STACK_TRACE, None)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
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
