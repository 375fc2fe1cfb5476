"""The per-token int8 rewrite (qa_tools.per_token) run through ONNX Runtime's own kernels on a tiny graph.

Exactness: ORT's result equals the per-token quantization computed independently in numpy (quantize, integer
product, dequantize) to float rounding, and stays within the quantization error bound of the fp32 product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qa_tools.per_token import (
    FLOORS,
    RESIDUAL,
    floors,
    local_error,
    per_token,
    quantize_weight,
    rewrite,
    sensitivity,
    weight_matmuls,
)

K, N = 64, 48


def two_projections(w1: np.ndarray, w2: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """x -> (x . w1 + bias, x . w2): two weight MatMuls sharing their input, as Q/K/V projections do."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, K])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2")]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="proj1"),
        helper.make_node("Add", ["m1", "bias"], ["y1"], name="bias1"),
        helper.make_node("MatMul", ["x", "w2"], ["y2"], name="proj2"),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (bias, "bias"))]
    graph = helper.make_graph(nodes, "tiny", [x], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(y) for y in session.run(["y1", "y2"], {"x": x})]


def emulate(x: np.ndarray, w: np.ndarray, bits: int) -> np.ndarray:
    """The per-token product in numpy: per-row activation scale, per-column weight scale, exact integers.
    Activations are quantized in float32 as the graph does (Div by the row max, QuantizeLinear at 1/127)."""
    x = x.astype(np.float32)
    r = np.maximum(np.abs(x).max(-1, keepdims=True), np.float32(1e-12))
    xq = np.clip(np.round((x / r) / np.float32(1 / 127)), -127, 127)  # round half to even, as QuantizeLinear
    wq, w_scale = quantize_weight(w, bits)
    acc = xq.astype(np.int64) @ wq.astype(np.int64)
    return acc.astype(np.float64) / 127 * w_scale * r.astype(np.float64)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, K)).astype(np.float32)
    x[0, 1] *= 40.0  # an outlier token: per-token scales keep the other tokens' resolution
    x[1, 3] = 0.0  # a zero row (padding): no division by zero, exact zeros out
    w1 = rng.normal(0, 0.1, size=(K, N)).astype(np.float32)
    w2 = rng.normal(0, 0.1, size=(K, N)).astype(np.float32)
    w2[:, 0] = 0.0  # an all-zero output channel
    return x, w1, w2, rng.normal(size=N).astype(np.float32)


@pytest.mark.parametrize("bits", [8, 7])
def test_the_rewrite_is_the_exact_per_token_dequantisation(bits: int, data: tuple[np.ndarray, ...]) -> None:
    x, w1, w2, bias = data
    model = rewrite(two_projections(w1, w2, bias), weight_bits=bits)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and "MatMul" not in ops
    assert ops.count("QuantizeLinear") == 1  # the shared input is quantized once
    assert {i.name for i in model.graph.initializer}.isdisjoint({"w1", "w2"})  # no fp32 copy kept
    y1, y2 = run(model, x)
    for got, w, b in ((y1, w1, bias), (y2, w2, 0.0)):
        expected = emulate(x, w, bits) + b
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        exact = x.astype(np.float64) @ w + b
        # Quantization error bound: half a step of each operand, summed over K.
        r = np.abs(x).max(-1, keepdims=True)
        bound = K * (r / 127 / 2 * np.abs(w).max() + r * np.abs(w).max(0) / (2 ** (bits - 1) - 1) / 2) + 1e-5
        assert np.all(np.abs(got - exact) <= bound)
    assert np.all(y2[1, 3] == 0.0) and np.all(y2[..., 0] == 0.0)
    # The outlier token does not coarsen the others: their error is that of unit-scale rows.
    normal = np.abs(y1 - (x.astype(np.float64) @ w1 + bias))[1]
    assert normal.max() < 0.05 * np.abs(x[1] @ w1).max()


def test_kept_matmuls_stay_fp32_and_exact(data: tuple[np.ndarray, ...]) -> None:
    x, w1, w2, bias = data
    model = rewrite(two_projections(w1, w2, bias), keep={"proj2"})
    assert [n.name for n in weight_matmuls(model)] == ["proj2"]
    y1, y2 = run(model, x)
    np.testing.assert_allclose(y2, x @ w2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y1, emulate(x, w1, 8) + bias, rtol=1e-5, atol=1e-4)


def test_smoothing_is_exact_in_fp32_and_only_moves_the_grid(data: tuple[np.ndarray, ...]) -> None:
    """X / s and s * W rows: the product is unchanged; the quantized result follows the smoothed operands."""
    x, w1, w2, bias = data
    maxima = {"x": np.abs(x).reshape(-1, K).max(0)}
    model = rewrite(two_projections(w1, w2, bias), smooth=maxima, smooth_alpha=0.5)
    w_max = np.maximum(np.abs(w1).max(1), np.abs(w2).max(1))
    s = (np.maximum(maxima["x"], 1e-5) ** 0.5 / np.maximum(w_max, 1e-5) ** 0.5).astype(np.float32)
    xs, w1s = x * (1 / s).astype(np.float32), w1 * s[:, None]  # the graph multiplies by 1/s
    exact = x.astype(np.float64) @ w1
    np.testing.assert_allclose(xs.astype(np.float64) @ w1s, exact, rtol=1e-4, atol=1e-4)  # exact migration
    y1, _ = run(model, x)
    np.testing.assert_allclose(y1, emulate(xs, w1s.astype(np.float32), 8) + bias, rtol=1e-5, atol=1e-4)


def test_sensitivity_ranks_the_matmul_whose_quantization_moves_the_outputs_most(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    x, w1, _, bias = data
    path = tmp_path / "tiny.onnx"
    onnx.save(two_projections(w1, w1 * 100, bias), str(path))  # the same error, 100 times larger on proj2
    ranked = sensitivity(path, [{"x": x}])
    assert [name for name, _ in ranked] == ["proj2", "proj1"]
    assert ranked[0][1] > 50 * ranked[1][1] > 0


def test_local_error_ranks_by_each_matmuls_own_relative_output_error(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    """One fp32 pass, the products redone in numpy: the figure is the emulated per-token product's error."""
    x, w1, _, bias = data
    w2 = w1.copy()
    w2[0] *= 50.0  # one huge input row: every output channel's scale is set by it, the rest quantize coarsely
    path = tmp_path / "tiny.onnx"
    onnx.save(two_projections(w1, w2, bias), str(path))
    ranked = dict(local_error(path, [{"x": x}]))
    assert list(ranked) == ["proj2", "proj1"]
    for name, w in (("proj1", w1), ("proj2", w2)):
        exact = x.reshape(-1, K).astype(np.float64) @ w
        error = emulate(x.reshape(-1, K), w, 8) - exact
        assert ranked[name] == pytest.approx(
            np.sqrt(np.square(error).sum() / np.square(exact).sum()), rel=1e-3
        )


def test_refined_matmuls_also_multiply_their_inputs_rounding_residual(data: tuple[np.ndarray, ...]) -> None:
    """Two-pass: the residual of the int8 rounding, quantized on a grid RESIDUAL times finer, through QGEMM
    again; the product is the numpy emulation of both passes, and far closer to fp32 than one pass."""
    x, w1, w2, bias = data
    model = rewrite(two_projections(w1, w2, bias), refine={"proj1"})
    ops = [n.op_type for n in model.graph.node]
    # The residual is quantized once for the group, multiplied again by the refined MatMul only.
    assert ops.count("MatMulIntegerToFloat") == 3 and ops.count("QuantizeLinear") == 2
    y1, y2 = run(model, x)
    r = np.maximum(np.abs(x).max(-1, keepdims=True), np.float32(1e-12))
    xn = x / r
    q1 = np.clip(np.round(xn / np.float32(1 / 127)), -127, 127)
    residual = xn - q1.astype(np.float32) * np.float32(1 / 127)
    q2 = np.clip(np.round(residual / np.float32(1 / (127 * RESIDUAL))), -128, 127)
    wq, w_scale = quantize_weight(w1, 8)
    acc1, acc2 = (q.astype(np.int64) @ wq.astype(np.int64) for q in (q1, q2))
    two_pass = (acc1 / 127 + acc2 / (127 * RESIDUAL)) * w_scale * r.astype(np.float64)
    np.testing.assert_allclose(y1, two_pass + bias, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(y2, emulate(x, w2, 8), rtol=1e-5, atol=1e-4)  # not refined: one pass
    exact = x.astype(np.float64) @ w1 + bias
    one_pass = emulate(x, w1, 8) + bias
    # What is left is the weights' rounding: the activations' share of the error is gone.
    only_weights = (x.astype(np.float64) @ (wq.astype(np.float64) * w_scale)) + bias
    assert np.abs(y1 - only_weights).max() < 0.02 * np.abs(one_pass - only_weights).max()
    assert np.abs(y1 - exact).max() < np.abs(one_pass - exact).max()


def gelu_projection(w: np.ndarray) -> onnx.ModelProto:
    """x -> g = Gelu(x) -> y = g . w, with g an output too: an FFN down-projection and its input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, K])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("g", "y")]
    nodes = [
        helper.make_node("Gelu", ["x"], ["g"], name="gelu", domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "w"], ["y"], name="down"),
    ]
    graph = helper.make_graph(nodes, "ffn", [x], outs, [numpy_helper.from_array(w, "w")])
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


@pytest.mark.parametrize("refined", [False, True])
def test_gelu_outputs_are_shifted_onto_the_unsigned_grid(refined: bool, data: tuple[np.ndarray, ...]) -> None:
    """GELU's output is >= -0.17: X + 0.17 per token over 0..255 (twice the signed grid's steps), and the shift's
    product with the quantized weights subtracted; ORT's result is that numpy emulation, with about half the
    activations' rounding error of the signed grid."""
    x, w, _, _ = data
    found = floors(gelu_projection(w))
    assert found == {"g": FLOORS["Gelu"]} and floors(two_projections(w, w, w[0])) == {}
    model = rewrite(gelu_projection(w), floors=found, refine={"down"} if refined else ())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    g, y = session.run(["g", "y"], {"x": x})
    assert g.min() >= -FLOORS["Gelu"]
    f = np.float32(FLOORS["Gelu"])
    r = np.maximum((g + f).max(-1, keepdims=True), np.float32(1e-12))
    xn = (g + f) / r
    q1 = np.clip(np.round(xn / np.float32(1 / 255)), 0, 255)
    wq, w_scale = quantize_weight(w, 8)
    weights = wq.astype(np.float64) * w_scale
    acc = (q1.astype(np.int64) @ wq.astype(np.int64)) / 255
    if refined:
        residual = xn - q1.astype(np.float32) * np.float32(1 / 255)
        q2 = np.clip(np.round(residual / np.float32(1 / (255 * RESIDUAL))), -128, 127)
        acc = acc + (q2.astype(np.int64) @ wq.astype(np.int64)) / (255 * RESIDUAL)
    emulated = acc * w_scale * r.astype(np.float64) - float(f) * weights.sum(0)
    np.testing.assert_allclose(y, emulated, rtol=1e-5, atol=1e-4)
    only_weights = g.astype(np.float64) @ weights  # the activations' share of the error is what moves
    signed = run_y(rewrite(gelu_projection(w), refine={"down"} if refined else ()), x)
    assert np.abs(y - only_weights).max() < 0.7 * np.abs(signed - only_weights).max()


def run_y(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], {"x": x})[0])


def test_gptq_rounding_lowers_the_output_error_on_inputs_like_the_calibration_ones() -> None:
    """Correlated inputs (as a layer's are): GPTQ's integers give a smaller output error than rounding each
    weight to nearest, on held-out inputs from the same distribution; same scales, same integer range."""
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(K, K))
    calibration, held_out = (rng.normal(size=(4000, K)) @ mixing for _ in range(2))
    w = rng.normal(0, 0.1, size=(K, N)).astype(np.float32)
    nearest, scale = quantize_weight(w, 8)
    rounded, gptq_scale = quantize_weight(w, 8, calibration.T @ calibration)
    np.testing.assert_array_equal(gptq_scale, scale)
    assert np.abs(rounded.astype(np.int16)).max() <= 127 and not np.array_equal(rounded, nearest)

    def error(values: np.ndarray) -> float:
        return float(np.square(held_out @ (values * scale.astype(np.float64)) - held_out @ w).sum())

    assert error(rounded) < 0.8 * error(nearest)
    # Uncorrelated inputs (a diagonal X^T X): nothing to push the error onto, GPTQ is rounding to nearest.
    np.testing.assert_array_equal(quantize_weight(w, 8, np.diag(rng.uniform(1, 2, size=K)))[0], nearest)


def test_the_recipe_refines_the_worst_share_and_gptq_rounds_on_the_calibration_windows(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    """``per_token`` wires the pieces: the worse of two MatMuls (by ``local_error``) gets the second pass, and the
    stored integers are GPTQ's (not rounding to nearest) for the calibration windows' inputs."""
    x, w1, _, bias = data
    w2 = w1.copy()
    w2[0] *= 50.0  # proj2 quantizes worse (as in the local_error test)
    fp32, out = tmp_path / "tiny.onnx", tmp_path / "tiny.int8.onnx"
    onnx.save(two_projections(w1, w2, bias), str(fp32))
    per_token(
        fp32,
        out,
        fusions=False,
        embeddings=False,
        calibration=[{"x": x}],
        smooth_alpha=None,  # no migration: proj2's huge row stays the worse one
        keep_share=0.5,
        keep_as="two-pass",
        gptq=True,
    )
    model = onnx.load(str(out))
    refined = [n.name for n in model.graph.node if n.name.endswith("_rgemm")]
    assert refined == ["proj2_pt_rgemm"]
    stored = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nearest = rewrite(two_projections(w1, w2, bias))
    assert not np.array_equal(
        stored["proj1_pt_wq"],
        numpy_helper.to_array(next(i for i in nearest.graph.initializer if i.name == "proj1_pt_wq")),
    )
    y1, y2 = run(model, x)
    exact = x.astype(np.float64) @ w1 + bias
    assert np.abs(y1 - exact).max() < 0.05 * np.abs(exact).max()
    np.testing.assert_allclose(y2, x @ w2, rtol=0.02, atol=0.02 * np.abs(x @ w2).max())
