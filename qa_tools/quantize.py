"""Publish-time int8 recipes for the exported fp32 graph: faithful (the default ``onnx-int8``) and fast.

Chosen by measurement (``bench/fidelity.py``; table in docs/performance.md "Int8 recipe"): dynamic quantization
(``onnx-int8-fast``) is the fastest int8 on CPUs with int8 dot products, but quantizes each activation tensor
with ONE scale, so near-tied answers flip (same span as fp32 on ~88 % of SQuAD 2.0 questions). The faithful
recipe keeps ~97 %+ for a small cost:

1. ONNX Runtime's transformer fusions (onnxscript ``optimize_for_ort``): Attention, SkipLayerNorm, BiasGelu.
   Attention keeps its Q/K/V weights in fp32 (ONNX Runtime has no int8-weight Attention on CPU): fidelity.
2. Every other weight MatMul -> ``MatMulNBits`` with 8-bit weights in blocks of ``BLOCK_SIZE`` along K and
   ``accuracy_level`` 4: int8 compute with activations quantized per block, not per tensor.
3. Embedding tables -> uint8 (dynamic ``Gather``): a quarter of the bytes to download, no measurable loss.

Both write a scratch file or two in the working directory (ONNX Runtime's shape inference): they run in a
temporary one, so nothing is left beside the caller.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from handler import variants
from qa_tools.export import atomic_write, build_fp32
from qa_tools.noise import quantizer_noise

# Blocks of 128 along K: on minilm-l6-squad (1,000 answerable SQuAD 2.0 dev questions) the same spans as blocks
# of 32 within noise (97 % +) at 0.75x their time per window; 256 and per-channel gave up fidelity.
BLOCK_SIZE = 128
ACCURACY_LEVEL = 4  # int8 activations and int32 accumulation: the VNNI / dot-product kernels
# Dynamic recipe: per-channel weights (per-tensor cost ~4 EM on minilm), MatMul and the embedding Gather.
FAST_OP_TYPES: tuple[str, ...] = ("MatMul", "Gather")


def build_int8(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8 variant's file in ``out_dir``: the faithful recipe over the fp32 export."""
    return _build("onnx-int8", faithful, model_dir, out_dir)


def build_int8_fast(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8-fast variant's file in ``out_dir``: dynamic quantization of the fp32 export."""
    return _build("onnx-int8-fast", dynamic, model_dir, out_dir)


def _build(name: str, recipe: Callable[[Path, Path], None], model_dir: Path, out_dir: Path) -> Path:
    out_dir = Path(out_dir).resolve()  # the recipes change the working directory
    fp32 = build_fp32(model_dir, out_dir)
    path = out_dir / variants.get(name).weight_file
    atomic_write(path, lambda tmp: recipe(fp32, tmp))
    return path


@quantizer_noise()
def faithful(fp32: Path, path: Path, *, block_size: int = BLOCK_SIZE) -> None:
    import onnx_ir as ir
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    with _scratch_cwd() as scratch:
        fused, _ = optimize_for_ort(ir.load(str(fp32)))
        fused_path, blocks_path = scratch / "fused.onnx", scratch / "blocks.onnx"
        ir.save(fused, str(fused_path))
        quantizer = MatMulNBitsQuantizer(
            str(fused_path),
            bits=8,
            block_size=block_size,
            is_symmetric=False,
            accuracy_level=ACCURACY_LEVEL,
            op_types_to_quantize=("MatMul",),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(blocks_path), use_external_data_format=False)
        quantize_dynamic(blocks_path, path, op_types_to_quantize=["Gather"], weight_type=QuantType.QUInt8)


@quantizer_noise()
def dynamic(fp32: Path, path: Path) -> None:
    """Int8 weights stored, activations quantized per tensor at run time (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _scratch_cwd():
        quantize_dynamic(
            fp32,
            path,
            op_types_to_quantize=list(FAST_OP_TYPES),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )


@contextmanager
def _scratch_cwd() -> Iterator[Path]:
    """A temporary working directory for the quantizers' scratch files (the CLI is single-threaded)."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        os.chdir(scratch)
        try:
            yield Path(scratch)
        finally:
            os.chdir(previous)
