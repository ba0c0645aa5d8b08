"""What every request handler needs: the store, the served types, allocators, admission and authorization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.resources import Registry
from ..storage.interface import Store
from .config import ServerConfig


@dataclass
class ApiContext:
    config: ServerConfig
    store: Store
    registry: Registry
    allocators: Any = None  # apiserver.allocators.ServiceAllocators
    admission: list[Any] = field(default_factory=list)
    authorizer: Any = None
    authenticators: list[Any] = field(default_factory=list)
    ready: bool = False
    object_cache: Any = None  # apiserver.object_cache.ObjectCache, started with admission
