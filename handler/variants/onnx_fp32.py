"""The reference graph exported to ONNX: the same answers as torch without torch in the image."""

from handler.variants import Variant

VARIANT = Variant(
    name="onnx-fp32",
    backend="onnx",
    precision="fp32",
    weights=(r"model\.onnx(_data|\.data)?",),
    weight_file="model.onnx",
    loader="handler.backends.onnx_backend:load",
    builder="qa_tools.export:build_fp32",
)
