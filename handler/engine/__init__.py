"""The QA engine, independent of Lambda: ``tokenization`` (windows) -> a backend (logits) -> ``decoding``
(spans) -> answers in the original context (``qa``), with ``params`` holding every request parameter."""

from handler.engine.params import QAParams
from handler.engine.qa import Answer, EncodedRequest, QAEngine

__all__ = ["Answer", "EncodedRequest", "QAEngine", "QAParams"]
