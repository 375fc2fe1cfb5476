"""The fp32 graph with int8 weights in blocks (qa_tools.quantize): a third of the download, faster than fp32, and
nearly always the same answer spans as fp32: publish measures it against onnx-fp32 and refuses it below the
fidelity gate's threshold (docs/int8-recipes.md has the measured figures)."""

from handler.variants import Variant

VARIANT = Variant(
    name="onnx-int8",
    backend="onnx",
    precision="int8",
    weights=(r"model\.int8\.onnx(_data|\.data)?",),
    weight_file="model.int8.onnx",
    loader="handler.backends.onnx_backend:load",
    builder="qa_tools.quantize:build_int8",
    default=True,
    reference="onnx-fp32",
)
