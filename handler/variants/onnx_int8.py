"""The fp32 graph with int8 weights: a quarter of the download, faster on CPUs with int8 dot products."""

from handler.variants import Variant

VARIANT = Variant(
    name="onnx-int8",
    backend="onnx",
    precision="int8",
    weights=(r"model\.int8\.onnx(_data|\.data)?",),
    weight_file="model.int8.onnx",
    loader="handler.backends.onnx_backend:load",
    builder="qa_tools.export:build_int8",
    default=True,
)
