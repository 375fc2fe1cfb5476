"""Int8 recipe with per-token activation scales on ONNX Runtime's QGEMM kernel (the MLAS int8 GEMM).

Dynamic quantization (``onnx-int8-fast``) gives a whole activation tensor ONE scale, so a few outlier tokens
coarsen every other token's grid and near-tied answers flip. Here each row (token) of a weight MatMul's input
gets its own scale, computed at run time, and each output channel of the weight its own, so the dequantisation
is exact up to rounding::

    Y = X . W  ->  r_t = max|X_t|                      (Abs, ReduceMax over the last axis)
                   Xq  = round(127 X / r_t) + 128       (Div, QuantizeLinear: uint8, zero point 128)
                   Wq  = round(W / w_c), w_c = max|W_:,c| / q   (int8 per output channel, stored)
                   Y  ~= r_t / 127 * w_c * (Xq - 128) . Wq       (MatMulIntegerToFloat, then Mul by r_t)

``MatMulIntegerToFloat`` (com.microsoft) runs MLAS QGEMM: widening multiplies on AVX2, dot products on
AVX-512 VNNI / AVX-VNNI / AMX and arm64. MatMuls that read the same input (Q, K and V) share one quantized
copy of it. On AVX2 the u8 x s8 kernel sums pairs of products in int16 (``vpmaddubsw``), which can saturate
when both operands use their full range: ``weight_bits=7`` (weights in -63..63) rules that out.

Options measured by ``bench/int8_recipes.py``: ``smooth_alpha`` (SmoothQuant-style per-input-channel
migration: X / s and s * W rows, s = max|X|^a / max|W|^(1-a) from calibration windows; exact in fp32),
``keep`` (MatMuls left fp32 by name), ``refine`` (MatMuls given a second QGEMM pass over their input's rounding
residual), ``hessians`` (GPTQ rounding of the weights) and ``floors`` (inputs with a known minimum, GELU
outputs, shifted onto the unsigned grid: Xq = round(255 (X + f) / r_t), r_t = max(X_t + f); the published recipe).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from qa_tools.export_log_filters import quantizer_noise

if TYPE_CHECKING:
    import onnx

_MS = "com.microsoft"
_TINY = 1e-12  # a row of zeros (padding) gets this max instead of a division by zero
GPTQ_DAMPING = 0.01  # share of the mean diagonal added to the Hessian: GPTQ's default, keeps it invertible
RESIDUAL = 254  # the residual's grid: |residual| <= half a step of 1/127, spread over -127..127
# Lowest value each activation can output (GELU's minimum is -0.16997, its tanh form's -0.17004): inputs they
# produce are shifted up by it and quantized on the unsigned grid, 255 steps over [0, max] instead of 127.
FLOORS = dict.fromkeys(("Gelu", "BiasGelu", "FastGelu"), 0.1701)


def _inputs(session: object, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed's arrays the graph reads (RoBERTa's graph has no token_type_ids)."""
    names = {i.name for i in session.get_inputs()}  # type: ignore[attr-defined]
    return {k: v for k, v in feed.items() if k in names}


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes whose right operand is a 2-D fp32 initializer and left operand is not."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in inits
        and n.input[0] not in inits
        and len(inits[n.input[1]].dims) == 2
        and inits[n.input[1]].data_type == TensorProto.FLOAT
    ]


def quantize_weight(
    weights: np.ndarray, bits: int, hessian: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel (column): values in -(2^(bits-1)-1)..2^(bits-1)-1 and their scales.

    ``hessian`` (X^T X of the calibration inputs, ``input_statistics``): GPTQ's rounding, input row by input row,
    each row's rounding error pushed onto the rows still to round along the inverse Hessian's Cholesky factor,
    so the OUTPUT error on inputs like the calibration ones shrinks, for the same integers' cost.
    """
    top = float(2 ** (bits - 1) - 1)
    scale = np.abs(weights).max(axis=0) / top
    scale[scale == 0] = 1.0
    if hessian is None:
        return np.clip(np.round(weights / scale), -top, top).astype(np.int8), scale.astype(np.float32)
    w = weights.astype(np.float64) / scale
    h = hessian.astype(np.float64) + GPTQ_DAMPING * np.mean(np.diag(hessian)) * np.eye(len(hessian))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor of H^-1
    values = np.empty(w.shape, np.int8)
    for k in range(len(w)):
        q = np.clip(np.round(w[k]), -top, top)
        values[k] = q
        w[k + 1 :] -= np.outer(u[k, k + 1 :] / u[k, k], w[k] - q)
    return values, scale.astype(np.float32)


def smoothing_scale(x_max: np.ndarray, weights: Sequence[np.ndarray], alpha: float) -> np.ndarray:
    """SmoothQuant's per-input-channel s = max|X|^a / max|W|^(1-a), over every MatMul reading that input."""
    w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
    s = np.power(np.maximum(x_max, 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
    return s.astype(np.float32)


def floors(model: onnx.ModelProto) -> dict[str, float]:
    """Weight-MatMul inputs that an activation with a known minimum (``FLOORS``) produces, and that minimum."""
    made = {o: FLOORS[n.op_type] for n in model.graph.node if n.op_type in FLOORS for o in n.output}
    return {n.input[0]: made[n.input[0]] for n in weight_matmuls(model) if n.input[0] in made}


def fake_quantized(
    x: np.ndarray, weights: np.ndarray, bits: int, floor: np.ndarray | float | None = None
) -> np.ndarray:
    """What the per-token int8 form computes for ``x . weights``, in float (rounding included); ``floor``:
    ``x >= -floor``, the unsigned grid over ``x + floor`` (``rewrite``'s ``floors``)."""
    wq, scale = quantize_weight(weights, bits)
    if floor is None:
        r = np.maximum(np.abs(x).max(axis=-1, keepdims=True), _TINY)
        xq = np.clip(np.round(127 * x / r), -128, 127) * (r / 127)
    else:
        shifted = x + floor
        r = np.maximum(shifted.max(axis=-1, keepdims=True), _TINY)
        xq = np.clip(np.round(255 * shifted / r), 0, 255) * (r / 255) - floor
    return xq @ (wq.astype(np.float32) * scale)


def rewrite(
    model: onnx.ModelProto,
    *,
    weight_bits: int = 8,
    keep: Collection[str] = (),
    refine: Collection[str] = (),
    smooth: Mapping[str, np.ndarray] | None = None,
    smooth_alpha: float = 0.5,
    hessians: Mapping[str, np.ndarray] | None = None,
    floors: Mapping[str, float] | None = None,
) -> onnx.ModelProto:
    """Replaces every weight MatMul (but those named in ``keep``) by the per-token int8 form, in place.

    ``refine``: MatMuls that also multiply the rounding residual of their input, quantized again on a grid
    ``RESIDUAL`` times finer (a second QGEMM): ~15-bit activations for twice the int8 work.
    ``smooth``: per weight-MatMul input name, max|X| per input channel from calibration (``input_statistics``).
    ``hessians``: per input name, X^T X from calibration (``input_statistics``): GPTQ rounding of the weights.
    ``floors``: per input name, f with X >= -f (``floors()``): X + f per token on the unsigned grid (twice the
    steps of the signed one), and the product's shift, f . W with the quantized W, subtracted as a constant.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    targets = [n for n in weight_matmuls(model) if n.name not in keep]
    groups: dict[str, list[onnx.NodeProto]] = {}
    for node in targets:
        groups.setdefault(node.input[0], []).append(node)
    consts = [
        numpy_helper.from_array(np.array([-1], np.int64), "pt_axes"),
        numpy_helper.from_array(np.array(_TINY, np.float32), "pt_tiny"),
        numpy_helper.from_array(np.array(1 / 127, np.float32), "pt_a_scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "pt_a_zero"),
        numpy_helper.from_array(np.array(1 / (127 * RESIDUAL), np.float32), "pt_r_scale"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "pt_u_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "pt_u_zero"),
        numpy_helper.from_array(np.array(1 / (255 * RESIDUAL), np.float32), "pt_ur_scale"),
    ]  # those no node reads are dropped at the end
    replaced: dict[str, list[onnx.NodeProto]] = {}  # first MatMul of a group -> nodes to put in its place
    dropped: set[str] = set()
    for g, (source, nodes) in enumerate(groups.items()):
        p = f"pt{g}"
        new: list[onnx.NodeProto] = []
        x = source
        weights = {n.name: numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for n in nodes}
        hessian = None if hessians is None else hessians.get(source)
        s = np.ones(len(next(iter(weights.values()))), np.float32)
        if smooth is not None and source in smooth:
            s = smoothing_scale(smooth[source], list(weights.values()), smooth_alpha)
            if hessian is not None:
                hessian = hessian / np.outer(s, s)  # of X / s
            consts.append(numpy_helper.from_array((1 / s).astype(np.float32), f"{p}_inv_s"))
            new.append(helper.make_node("Mul", [x, f"{p}_inv_s"], [f"{p}_xs"], name=f"{p}_smooth"))
            x = f"{p}_xs"
            weights = {k: w * s[:, None] for k, w in weights.items()}
        shift = None if floors is None or source not in floors else (floors[source] / s).astype(np.float32)
        if shift is None:  # signed grid: -r..r per token over -127..127, r = max|X_t|
            grid, residual = ("pt_a_scale", "pt_a_zero"), "pt_r_scale"
            new.append(helper.make_node("Abs", [x], [f"{p}_abs"], name=f"{p}_abs"))
            peak = f"{p}_abs"
        else:  # unsigned grid: 0..r per token over 0..255, r = max(X_t + f)
            grid, residual = ("pt_u_scale", "pt_u_zero"), "pt_ur_scale"
            consts.append(numpy_helper.from_array(shift, f"{p}_floor"))
            new.append(helper.make_node("Add", [x, f"{p}_floor"], [f"{p}_xf"], name=f"{p}_shift"))
            x = peak = f"{p}_xf"
        new += [
            helper.make_node("ReduceMax", [peak, "pt_axes"], [f"{p}_rmax"], name=f"{p}_rmax", keepdims=1),
            helper.make_node("Max", [f"{p}_rmax", "pt_tiny"], [f"{p}_r"], name=f"{p}_r"),
            helper.make_node("Div", [x, f"{p}_r"], [f"{p}_xn"], name=f"{p}_div"),
            helper.make_node("QuantizeLinear", [f"{p}_xn", *grid], [f"{p}_xq"], name=f"{p}_quant"),
        ]
        if any(n.name in refine for n in nodes):
            new += [
                helper.make_node("DequantizeLinear", [f"{p}_xq", *grid], [f"{p}_xd"], name=f"{p}_dequant"),
                helper.make_node("Sub", [f"{p}_xn", f"{p}_xd"], [f"{p}_res"], name=f"{p}_res"),
                helper.make_node(
                    "QuantizeLinear", [f"{p}_res", residual, "pt_a_zero"], [f"{p}_rq"], name=f"{p}_rquant"
                ),
            ]
        for node in nodes:
            wq, w_scale = quantize_weight(weights[node.name], weight_bits, hessian)
            q = f"{node.name}_pt"
            consts += [numpy_helper.from_array(wq, f"{q}_wq"), numpy_helper.from_array(w_scale, f"{q}_ws")]
            # (input, its scale, its zero point, output, node) suffixes
            passes = [(f"{p}_xq", *grid, "y", "gemm")]
            if node.name in refine:
                passes.append((f"{p}_rq", residual, "pt_a_zero", "yr", "rgemm"))
            new += [
                helper.make_node(
                    "MatMulIntegerToFloat",
                    [xq, f"{q}_wq", scale, f"{q}_ws", zero],
                    [f"{q}_{out}"],
                    name=f"{q}_{name}",
                    domain=_MS,
                )
                for xq, scale, zero, out, name in passes
            ]
            y = f"{q}_y"
            if node.name in refine:
                new.append(helper.make_node("Add", [y, f"{q}_yr"], [f"{q}_y2"], name=f"{q}_refine"))
                y = f"{q}_y2"
            if shift is None:
                new.append(helper.make_node("Mul", [y, f"{p}_r"], list(node.output), name=f"{q}_rescale"))
            else:  # (X + f) . Wq - f . Wq
                unshift = -(shift.astype(np.float64) @ (wq.astype(np.float64) * w_scale))
                consts.append(numpy_helper.from_array(unshift.astype(np.float32), f"{q}_unshift"))
                new += [
                    helper.make_node("Mul", [y, f"{p}_r"], [f"{q}_ys"], name=f"{q}_rescale"),
                    helper.make_node(
                        "Add", [f"{q}_ys", f"{q}_unshift"], list(node.output), name=f"{q}_unshift"
                    ),
                ]
            dropped.add(node.name)
        replaced[nodes[0].name] = new
    out: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.name in replaced:
            out += replaced[node.name]
        elif node.name not in dropped:
            out.append(node)
    del graph.node[:]
    graph.node.extend(out)
    used = {name for node in graph.node for name in node.input}
    for init in list(graph.initializer):
        if init.name not in used:
            graph.initializer.remove(init)
    graph.initializer.extend(c for c in consts if c.name in used)
    if not any(o.domain == _MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS, 1))
    return model


def matmul_inputs(
    model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]]
) -> Iterator[dict[str, np.ndarray]]:
    """Per feed, the fp32 value of every weight MatMul's input (``model``'s outputs are extended to them)."""
    import onnx
    import onnxruntime as ort

    sources = sorted({n.input[0] for n in weight_matmuls(model)})
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in sources if name not in known)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feed in feeds:
        yield dict(zip(sources, session.run(sources, _inputs(session, feed)), strict=True))


def input_statistics(
    model_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], *, hessians: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per weight-MatMul input over the calibration feeds (fp32 graph), in one pass: max|X| per input channel
    (for the migration) and, with ``hessians``, X^T X (for GPTQ rounding; else empty: costly at K = 3072)."""
    import onnx

    maxima: dict[str, np.ndarray] = {}
    sums: dict[str, np.ndarray] = {}
    for values in matmul_inputs(onnx.load(str(model_path)), feeds):
        for name, value in values.items():
            x = value.reshape(-1, value.shape[-1])
            m = np.abs(x).max(axis=0)
            maxima[name] = np.maximum(maxima[name], m) if name in maxima else m
            if hessians:
                xx = x.astype(np.float64)
                sums[name] = sums[name] + xx.T @ xx if name in sums else xx.T @ xx
    return maxima, sums


@quantizer_noise()
def per_token(
    fp32: Path,
    path: Path,
    *,
    weight_bits: int = 8,
    fusions: bool = True,
    embeddings: bool = True,
    keep: Collection[str] = (),
    calibration: Sequence[Mapping[str, np.ndarray]] = (),
    smooth_alpha: float | None = 0.5,
    keep_share: float = 0.0,
    rank: Literal["local", "damage"] = "local",
    keep_as: Literal["fp32", "blocks", "two-pass"] = "fp32",
    gptq: bool = False,
    shift: bool = False,
) -> None:
    """The recipe over the fp32 export: ONNX Runtime's transformer fusions (as the faithful recipe, without the
    packed Attention), every weight MatMul per-token int8 (``rewrite``), embedding tables in 8-bit blocks.

    ``calibration``: model inputs (windows) for the SmoothQuant-style migration with ``smooth_alpha`` (None:
    no migration), its channel maxima measured on the graph being rewritten, and for ``keep_share``: that share
    of the weight MatMuls, ranked worst by ``rank`` (``local_error`` or ``sensitivity``) on the calibration
    windows, kept out of QGEMM: fp32, or ``blocks`` (the faithful recipe's ``MatMulNBits``), or given a second
    QGEMM pass (``two-pass``: ``rewrite``'s ``refine``); ``gptq``: the weights GPTQ-rounded on those windows;
    ``shift``: the GELU outputs (the FFN down-projections' inputs) on the unsigned grid (``rewrite``'s ``floors``).
    """
    import onnx
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    from qa_tools.quantize import (
        BLOCK_SIZE,
        _scratch_cwd,
        _without_packed_attention,
        matmul_nbits,
        quantize_embeddings,
    )

    fp32, path = Path(fp32).resolve(), Path(path).resolve()
    with _scratch_cwd() as scratch, _without_packed_attention():
        source = fp32
        if fusions:
            fused, _ = optimize_for_ort(ir.load(str(fp32)))
            source = scratch / "fused.onnx"
            ir.save(fused, str(source))
        model = onnx.load(str(source))
        needed = bool(calibration) and (smooth_alpha is not None or gptq)
        maxima, sums = input_statistics(source, calibration, hessians=gptq) if needed else ({}, {})
        smooth = maxima if needed and smooth_alpha is not None else None
        options = {
            "weight_bits": weight_bits,
            "smooth": smooth,
            "smooth_alpha": smooth_alpha or 0.0,
            "floors": floors(model) if shift else None,
        }
        if keep_share:
            ranked = (local_error if rank == "local" else sensitivity)(source, calibration, **options)
            keep = {*keep, *(name for name, _ in ranked[: round(keep_share * len(ranked))])}
        options["hessians"] = sums if gptq else None
        rewrite(model, **{"refine" if keep_as == "two-pass" else "keep": keep}, **options)  # type: ignore[arg-type]
        if keep and keep_as == "blocks":
            model = matmul_nbits(model)
    if embeddings:
        quantize_embeddings(model, BLOCK_SIZE)
    onnx.save(model, str(path))


def sensitivity(
    model_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], **options: object
) -> list[tuple[str, float]]:
    """Each weight MatMul ranked by the damage it alone does when per-token quantized (worst first).

    Damage: mean over ``feeds`` of the largest absolute change of any output logit against the fp32 graph.
    """
    import onnx
    import onnxruntime as ort

    base = onnx.load(str(model_path))
    names = [n.name for n in weight_matmuls(base)]

    def outputs(model: onnx.ModelProto) -> list[list[np.ndarray]]:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return [session.run(None, _inputs(session, feed)) for feed in feeds]

    reference = outputs(base)
    damage = []
    for name in names:
        model = onnx.load(str(model_path))
        rewrite(model, keep=set(names) - {name}, **options)  # type: ignore[arg-type]
        got = outputs(model)
        worst = [
            max(float(np.abs(a - b).max()) for a, b in zip(g, r, strict=True))
            for g, r in zip(got, reference, strict=True)
        ]
        damage.append((name, float(np.mean(worst))))
    return sorted(damage, key=lambda item: -item[1])


def local_error(
    model_path: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    weight_bits: int = 8,
    smooth: Mapping[str, np.ndarray] | None = None,
    smooth_alpha: float = 0.5,
    floors: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Each weight MatMul ranked by the relative error of its own output when per-token quantized (worst first).

    One fp32 pass per feed and the MatMuls redone in NumPy: seconds, where ``sensitivity`` builds and runs one
    graph per MatMul (2.5 min for MiniLM's 37 here, and each of roberta-base's 73 graphs is ~10x slower).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    inits = {i.name: i for i in model.graph.initializer}
    nodes = weight_matmuls(model)
    readers: dict[str, list[np.ndarray]] = {}
    weights = {}
    for n in nodes:
        weights[n.name] = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        readers.setdefault(n.input[0], []).append(weights[n.name])
    scales = {
        src: smoothing_scale(smooth[src], read, smooth_alpha)
        for src, read in readers.items()
        if smooth is not None and src in smooth
    }
    error = dict.fromkeys(weights, 0.0)
    total = dict.fromkeys(weights, 0.0)
    for values in matmul_inputs(model, feeds):
        for n in nodes:
            w = weights[n.name]
            x = values[n.input[0]].reshape(-1, w.shape[0])
            exact = x @ w
            s = scales.get(n.input[0], np.ones(len(w), np.float32))
            x, w = x / s, w * s[:, None]  # exact in fp32: only the quantization grid moves
            floor = None if floors is None or n.input[0] not in floors else floors[n.input[0]] / s
            error[n.name] += float(np.square(fake_quantized(x, w, weight_bits, floor) - exact).sum())
            total[n.name] += float(np.square(exact).sum())
    ranked = [(name, (error[name] / max(total[name], _TINY)) ** 0.5) for name in weights]
    return sorted(ranked, key=lambda item: -item[1])
