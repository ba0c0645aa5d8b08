"""Client machinery every component builds on: the API client, informers, work queues, events, leases.

    from kubelite.client import ApiClient, SharedInformerFactory, WorkQueue, run_workers, EventRecorder
"""

from .events import EventCorrelator, EventRecorder
from .informer import (
    NAMESPACE_INDEX,
    NODE_NAME_INDEX,
    OWNER_UID_INDEX,
    Informer,
    SharedInformerFactory,
    key_of,
    make_key,
    split_key,
)
from .leaderelection import LeaderElector
from .rest import ApiClient, ClientError, WatchStream
from .workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)

__all__ = [
    "ApiClient", "ClientError", "WatchStream",
    "Informer", "SharedInformerFactory", "key_of", "make_key", "split_key",
    "NAMESPACE_INDEX", "OWNER_UID_INDEX", "NODE_NAME_INDEX",
    "WorkQueue", "ShutDown", "run_workers", "ItemExponentialFailureRateLimiter", "BucketRateLimiter",
    "MaxOfRateLimiter", "default_controller_rate_limiter",
    "EventRecorder", "EventCorrelator",
    "LeaderElector",
]
