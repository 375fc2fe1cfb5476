"""The embedding-table quantizer of the faithful int8 recipe, run through ONNX Runtime's own kernel."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qa_tools.quantize import quantize_embeddings

BLOCK = 32


def lookup_graph(table: np.ndarray, *extra: onnx.NodeProto) -> onnx.ModelProto:
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [None])
    out = helper.make_tensor_value_info("rows", TensorProto.FLOAT, [None, table.shape[1]])
    node = helper.make_node("Gather", ["table", "ids"], ["rows"], name="lookup")
    outputs = [out, *(helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in extra)]
    graph = helper.make_graph(
        [node, *extra], "lookup", [ids], outputs, [numpy_helper.from_array(table, "table")]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def run(model: onnx.ModelProto, ids: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["rows"], {"ids": ids})[0])


def test_tables_become_8_bit_blocks_that_onnx_runtime_reads_back_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.05, size=(50, 4 * BLOCK)).astype(np.float32)
    table[3, :BLOCK] = 0.0  # an all-zero block: scale 1, exact zeros
    table[7, 5] = 4.0  # an outlier widens only its own block's step
    model = lookup_graph(table)
    quantize_embeddings(model, BLOCK)

    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized"]
    stored = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert stored["table_q8"].dtype == np.uint8 and stored["table_q8"].shape == table.shape
    assert stored["table_scale"].shape == (50, 4)
    ids = np.array([0, 3, 7, 49, 7], dtype=np.int64)
    got = run(model, ids)
    step = np.repeat(stored["table_scale"][ids], BLOCK, axis=1)
    assert np.all(np.abs(got - table[ids]) <= step / 2 + 1e-7)
    assert np.all(got[1, :BLOCK] == 0.0)
    assert np.abs(got - table[ids])[[0, 3]].max() < 1e-3  # rows without the outlier keep fine steps


@pytest.mark.parametrize("shape", [(50, BLOCK + 8), (50,)])
def test_tables_the_kernel_cannot_take_stay_fp32(shape: tuple[int, ...]) -> None:
    table = np.ones(shape, dtype=np.float32)
    model = lookup_graph(table) if len(shape) == 2 else lookup_graph(table.reshape(50, 1))
    quantize_embeddings(model, BLOCK)
    assert [n.op_type for n in model.graph.node] == ["Gather"]


def test_a_table_looked_up_twice_is_stored_once() -> None:
    table = np.random.default_rng(1).normal(size=(20, BLOCK)).astype(np.float32)
    model = lookup_graph(table, helper.make_node("Gather", ["table", "ids"], ["again"], name="again"))
    quantize_embeddings(model, BLOCK)
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized"] * 2
    assert sorted(i.name for i in model.graph.initializer) == ["table_q8", "table_scale", "table_zero"]
    run(model, np.array([1, 2], dtype=np.int64))


def test_a_table_another_op_reads_stays_fp32() -> None:
    """A tied weight (a table that is also a MatMul's matrix) would lose its float copy: left alone."""
    table = np.ones((20, BLOCK), dtype=np.float32)
    model = lookup_graph(table, helper.make_node("Transpose", ["table"], ["transposed"], name="tied"))
    quantize_embeddings(model, BLOCK)
    assert [n.op_type for n in model.graph.node] == ["Gather", "Transpose"]
    assert [i.name for i in model.graph.initializer] == ["table"]
