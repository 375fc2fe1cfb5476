"""The function's API across event shapes: ``events`` recognises a shape, ``http`` (API Gateway, function URLs)
and ``direct`` (invokes) adapt it to ``handler.contract``, ``batch`` answers a Distributed Map batch,
``errors`` says what a caller sees when it fails.

``__all__`` is the surface other packages (``qa_tools``, ``bench``) import; the modules are the package's own.
``app`` imports every module here anyway, so importing them all at once costs init nothing.
"""

from handler.api.batch import (
    GOLD,
    ID,
    BatchDefaults,
    Prepared,
    answer_batch,
    handle_batch,
    item_id,
    prepare_item,
)
from handler.api.direct import handle_direct
from handler.api.errors import describe_errors
from handler.api.events import Shape, detect_shape
from handler.api.http import ROUTES, handle_http

__all__ = [
    "GOLD",
    "ID",
    "ROUTES",
    "BatchDefaults",
    "Prepared",
    "Shape",
    "answer_batch",
    "describe_errors",
    "detect_shape",
    "handle_batch",
    "handle_direct",
    "handle_http",
    "item_id",
    "prepare_item",
]
