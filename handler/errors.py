"""Domain errors: what went wrong, in the engine's and the service's words. No HTTP here.

``handler.api.errors`` maps each to the one status and type a caller sees; the model store's errors
(``handler.store.errors``) never reach a caller directly: a failed init becomes ``ModelUnavailable``.
"""

from __future__ import annotations

# The log line a failed model load writes at init (handler.runtime.loader), its "error" field naming the cause;
# callers see only the error's type, and ``qa_tools.local`` shows the cause from this line.
MODEL_LOAD_FAILED = "model failed to load"


class QAError(Exception):
    """Base of every error a request can cause; its message is safe to show the caller."""


class InvalidInput(QAError):
    """Well-formed, but asks for something this model cannot do (a window longer than the model, ...)."""


class LimitExceeded(QAError):
    """The request exceeds a documented limit (body, context, batch or windows)."""


class TimeBudgetExceeded(LimitExceeded):
    """The request would not finish before the function times out: refused early instead."""


class OutOfTime(QAError):
    """A batch ran out of invocation time before reaching this item: it was not attempted, so resending it is safe."""


class ModelUnavailable(QAError):
    """The model could not be loaded at init, so no request can be answered (a retry may help later)."""


class ConfigurationError(ValueError):
    """The function's environment is wrong (a deploy mistake): fails init by name, no retry can fix it."""
