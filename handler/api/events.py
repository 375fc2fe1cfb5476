"""Recognises an event's shape, so one handler serves API Gateway, function URLs and direct invokes."""

from __future__ import annotations

from enum import Enum
from typing import Any


class Shape(Enum):
    REST_V1 = "rest-v1"  # API Gateway REST API proxy integration (payload format 1.0)
    HTTP_V2 = "http-v2"  # API Gateway HTTP API (payload format 2.0)
    FUNCTION_URL = "function-url"  # Lambda function URL (payload format 2.0, lambda-url domain)
    DIRECT = "direct"  # `aws lambda invoke`: the event is the request itself
    BATCH = "batch"  # Step Functions Distributed Map with ItemBatcher: {"Items": [...], "BatchInput": {...}}
    SELF_CHECK = "self-check"  # {"self_check": {...}}: the golden answers re-asked (handler.api.self_check)


def detect_shape(event: Any) -> Shape:
    if not isinstance(event, dict):
        return Shape.DIRECT
    ctx = event.get("requestContext")
    if not isinstance(ctx, dict):
        if "self_check" in event:
            return Shape.SELF_CHECK
        return Shape.BATCH if "Items" in event else Shape.DIRECT
    if event.get("version") == "2.0" and isinstance(ctx.get("http"), dict):
        domain = str(ctx.get("domainName", ""))
        return Shape.FUNCTION_URL if ".lambda-url." in domain else Shape.HTTP_V2
    if "httpMethod" in event:
        return Shape.REST_V1
    return Shape.DIRECT
