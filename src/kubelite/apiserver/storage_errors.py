"""A store failure that reaches the request handler, as the Status upstream answers for storage it cannot reach.

The verbs turn the store's expected outcomes (key exists, not found, conflict, compacted) into their own Statuses;
what is left is the store being unable to serve.  kube-apiserver answers that with a 5xx the client may retry:
503 ServiceUnavailable when etcd cannot be reached or has no leader, 504 Timeout when a request ran out of time
(for a write, its outcome is then unknown).  The message is the store's, readable; no traceback is logged.
"""

from __future__ import annotations

from ..api.errors import ApiError, gone
from ..storage.interface import CompactedError, StoreError

_TIMED_OUT = ("timed out", "timeout", "deadline exceeded", "outcome is unknown")


def storage_status(error: StoreError) -> ApiError:
    if isinstance(error, CompactedError):  # a read the verb did not expect to be at a past revision
        return gone(f"too old resource version: {error.requested} ({error.compacted})")
    message = str(error) or type(error).__name__
    if any(marker in message.lower() for marker in _TIMED_OUT):
        return ApiError(504, "Timeout", f"Timeout: {message}")
    if _unavailable(error):
        return ApiError(503, "ServiceUnavailable", message)
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def _unavailable(error: StoreError) -> bool:
    try:
        from ..storage.etcd import EtcdUnavailableError
    except ImportError:  # aiohttp is a dependency, but the SQLite store does not need it
        return False
    return isinstance(error, EtcdUnavailableError)
