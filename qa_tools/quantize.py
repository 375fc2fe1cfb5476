"""Publish-time int8 recipes for the exported fp32 graph: faithful (the default ``onnx-int8``) and fast.

Chosen by measurement (``bench/fidelity.py``; table in docs/int8-recipes.md): dynamic quantization
(``onnx-int8-fast``) is the fastest int8 on CPUs with int8 dot products, but quantizes each activation tensor
with ONE scale, so near-tied answers flip. The faithful recipe keeps nearly all of fp32's answers for a small
cost (the measured shares, speeds and sizes of both, and of the alternatives below: docs/performance.md):

1. ONNX Runtime's transformer fusions (onnxscript ``optimize_for_ort``): MultiHeadAttention, SkipLayerNorm,
   BiasGelu; but not the packed-QKV ``Attention`` op, whose Q/K/V weights would have to stay fp32 (ONNX Runtime
   has no int8-weight Attention on CPU): a larger download for no speed (the ``faithful-packed-attention`` row).
2. Every weight MatMul -> ``MatMulNBits`` with 8-bit weights in blocks of ``BLOCK_SIZE`` along K and
   ``accuracy_level`` 4: int8 compute with activations quantized per block, not per tensor.
3. Embedding tables -> ``GatherBlockQuantized``, 8-bit blocks of ``BLOCK_SIZE`` along each row (ORT's own
   quantizer writes only 4-bit ones). One scale for the whole table (dynamic ``Gather``) costs fidelity; fp32
   tables double the file (the ``faithful-fp32-emb`` row).

Both write a scratch file or two in the working directory (ONNX Runtime's shape inference): they run in a
temporary one, so nothing is left beside the caller.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from handler import variants
from qa_tools import export
from qa_tools.export_log_filters import quantizer_noise

if TYPE_CHECKING:
    import numpy as np
    import onnx

# Blocks of 32: on minilm-l6-squad (1,000 answerable SQuAD 2.0 dev questions) 97.5 % the same span as fp32
# (98.1 % with fp32 packed Attention, a third larger); blocks of 64 and 128 fell under 97 %
# (docs/int8-recipes.md).
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # int8 activations and int32 accumulation: the VNNI / dot-product kernels
# QGEMM recipe (onnx-int8-qgemm): every weight MatMul per-token int8, migration alpha 0.5, the GELU outputs on the
# unsigned grid. On minilm-l6-squad, 1,000 answerable SQuAD 2.0 dev questions, AVX-512 VNNI: 97.0 % the same span
# as fp32 at 1.99x fp32's speed per window; keeping the worst third in MatMulNBits blocks (published until
# 2026-12-07): 97.8 % at 1.59x; alpha 0.75 / 0.35: 95.0 / 96.1 % (docs/int8-recipes.md).
SMOOTH_ALPHA = 0.5
# Dynamic recipe: per-channel weights (per-tensor cost ~4 EM on minilm), MatMul and the embedding Gather.
FAST_OP_TYPES: tuple[str, ...] = ("MatMul", "Gather")


def build_int8(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8 variant's file in ``out_dir``: the faithful recipe over the fp32 export."""
    return _build("onnx-int8", faithful, model_dir, out_dir)


def build_int8_fast(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8-fast variant's file in ``out_dir``: dynamic quantization of the fp32 export."""
    return _build("onnx-int8-fast", dynamic, model_dir, out_dir)


def build_int8_qgemm(model_dir: Path, out_dir: Path) -> Path:
    """The onnx-int8-qgemm variant's file in ``out_dir``: ``qgemm``, calibrated on ``qa_tools/calibration``."""
    from qa_tools import calibration

    feeds = calibration.feeds(model_dir)
    return _build("onnx-int8-qgemm", lambda fp32, path: qgemm(fp32, path, feeds), model_dir, out_dir)


def qgemm(fp32: Path, path: Path, calibration: Sequence[Mapping[str, np.ndarray]]) -> None:
    """The chosen per-token recipe (``qa_tools.per_token``): every weight MatMul on QGEMM, migration
    ``SMOOTH_ALPHA`` measured on the calibration windows, the GELU outputs on the unsigned grid (``shift``)."""
    from qa_tools.per_token import per_token

    per_token(fp32, path, calibration=calibration, smooth_alpha=SMOOTH_ALPHA, shift=True)


def _build(name: str, recipe: Callable[[Path, Path], None], model_dir: Path, out_dir: Path) -> Path:
    fp32 = export.build_fp32(model_dir, out_dir)  # through the module: a cache may stand in for it (bench)
    path = Path(out_dir) / variants.get(name).weight_file
    export.atomic_write(path, lambda tmp: recipe(fp32, tmp))
    return path


@quantizer_noise()
def faithful(
    fp32: Path,
    path: Path,
    *,
    block_size: int = BLOCK_SIZE,
    packed_attention: bool = False,
    embeddings: bool = True,
) -> None:
    """Fusions, then 8-bit blocks for every weight MatMul and every embedding table (see the module's steps).

    The keywords are the alternatives ``bench/fidelity.py`` measured: the defaults are what it chose.
    """
    fp32, path = Path(fp32).resolve(), Path(path).resolve()  # before the scratch directory becomes the cwd
    import onnx
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    with _scratch_cwd() as scratch, nullcontext() if packed_attention else _without_packed_attention():
        fused, _ = optimize_for_ort(ir.load(str(fp32)))
        fused_path = scratch / "fused.onnx"
        ir.save(fused, str(fused_path))
        model = matmul_nbits(str(fused_path), block_size)
        if embeddings:
            quantize_embeddings(model, block_size)
        onnx.save(model, str(path))


def matmul_nbits(model: str | onnx.ModelProto, block_size: int = BLOCK_SIZE) -> onnx.ModelProto:
    """Every weight MatMul left in ``model`` (a path or a graph) -> ``MatMulNBits``, 8-bit blocks (step 2)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        model,
        bits=8,
        block_size=block_size,
        is_symmetric=False,
        accuracy_level=ACCURACY_LEVEL,
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    result: onnx.ModelProto = quantizer.model.model
    return result


def quantize_embeddings(model: onnx.ModelProto, block_size: int) -> None:
    """Each 2-D fp32 table read only by ``Gather`` (rows looked up by id) -> ``GatherBlockQuantized``: uint8 values
    with a scale and zero point per block of ``block_size`` along the row, asymmetric (min..max, 0 exact)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    tables = {init.name: init for init in graph.initializer}

    def lookup(node: onnx.NodeProto) -> bool:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        return node.op_type == "Gather" and axis == 0 and node.input[0] in tables

    readers: dict[str, set[bool]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            readers.setdefault(name, set()).add(position == 0 and lookup(node))
    chosen = set()
    for name, table in tables.items():
        weights = numpy_helper.to_array(table)
        if readers.get(name) != {True} or weights.dtype != np.float32 or weights.ndim != 2:
            continue  # also read by another op, or not a table of rows
        if weights.shape[1] % block_size:
            continue
        rows, width = weights.shape
        blocks = weights.reshape(rows, width // block_size, block_size)
        low, high = np.minimum(blocks.min(-1), 0), np.maximum(blocks.max(-1), 0)
        scale = ((high - low) / 255).astype(np.float32)
        scale[scale == 0] = 1.0
        zero = np.clip(np.round(-low / scale), 0, 255).astype(np.uint8)
        values = np.clip(np.round(blocks / scale[..., None]) + zero[..., None], 0, 255).astype(np.uint8)
        graph.initializer.remove(table)
        graph.initializer.extend([
            numpy_helper.from_array(values.reshape(rows, width), f"{name}_q8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(zero, f"{name}_zero"),
        ])  # fmt: skip
        chosen.add(name)
    nodes = [
        helper.make_node(
            "GatherBlockQuantized",
            [f"{node.input[0]}_q8", node.input[1], f"{node.input[0]}_scale", f"{node.input[0]}_zero"],
            list(node.output),
            name=f"{node.name}_q8",
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=1,
            block_size=block_size,
            bits=8,
        )
        if node.input[0] in chosen and lookup(node)
        else node
        for node in graph.node
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    if chosen and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


@quantizer_noise()
def dynamic(fp32: Path, path: Path) -> None:
    """Int8 weights stored, activations quantized per tensor at run time (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, path = Path(fp32).resolve(), Path(path).resolve()  # before the scratch directory becomes the cwd
    with _scratch_cwd():
        quantize_dynamic(
            fp32,
            path,
            op_types_to_quantize=list(FAST_OP_TYPES),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )


@contextmanager
def _without_packed_attention() -> Iterator[None]:
    """onnxscript (pinned) has no switch for its packed-QKV fusion: its step is replaced by one fusing nothing."""
    from onnxscript.rewriter.ort_fusions import _core

    step = _core.fuse_attention
    _core.fuse_attention = lambda model, **kwargs: 0
    try:
        yield
    finally:
        _core.fuse_attention = step


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
