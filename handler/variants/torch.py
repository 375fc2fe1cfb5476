"""The reference: transformers' AutoModelForQuestionAnswering on torch, fp32, from the safetensors weights."""

from handler.variants import Variant

VARIANT = Variant(
    name="torch",
    backend="torch",
    precision="fp32",
    weights=(r"model(-\d+-of-\d+)?\.safetensors(\.index\.json)?",),
    loader="handler.backends.torch_backend:load",
    default=True,
)
