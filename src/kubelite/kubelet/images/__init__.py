"""Images for the kubelet's real runtime: references, the registry client, the node's image store,
container root filesystems, archive import, and pulling with upstream's policies and reasons."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .archive import ImportError_, import_archive
    from .puller import (
        ERR_IMAGE_NEVER_PULL,
        ERR_IMAGE_PULL,
        IMAGE_PULL_BACKOFF,
        INVALID_IMAGE_NAME,
        ImagePuller,
        ImagePullError,
        PullBackOff,
        default_pull_policy,
    )
    from .reference import InvalidReference, Reference, normalize, parse
    from .registry import (
        Platform,
        RegistriesConfig,
        RegistryClient,
        RegistryError,
        auths_from_secrets,
        find_credentials,
        host_platform,
    )
    from .rootfs import Rootfs, RootfsError, RootfsManager, overlay_supported
    from .store import ImageRecord, ImageStore, StoreError

# loaded on first use: the node agent has no use for image archives (`kubelite images import`)
_LAZY = {
    "ImportError_": "archive", "import_archive": "archive",
    "ERR_IMAGE_NEVER_PULL": "puller", "ERR_IMAGE_PULL": "puller", "IMAGE_PULL_BACKOFF": "puller",
    "INVALID_IMAGE_NAME": "puller", "ImagePuller": "puller", "ImagePullError": "puller", "PullBackOff": "puller",
    "default_pull_policy": "puller",
    "InvalidReference": "reference", "Reference": "reference", "normalize": "reference", "parse": "reference",
    "Platform": "registry", "RegistriesConfig": "registry", "RegistryClient": "registry", "RegistryError": "registry",
    "auths_from_secrets": "registry", "find_credentials": "registry", "host_platform": "registry",
    "Rootfs": "rootfs", "RootfsError": "rootfs", "RootfsManager": "rootfs", "overlay_supported": "rootfs",
    "ImageRecord": "store", "ImageStore": "store", "StoreError": "store",
}

__all__ = [
    "ERR_IMAGE_NEVER_PULL", "ERR_IMAGE_PULL", "IMAGE_PULL_BACKOFF", "INVALID_IMAGE_NAME", "ImagePullError",
    "ImagePuller", "ImageRecord", "ImageStore", "ImportError_", "InvalidReference", "Platform", "PullBackOff",
    "Reference", "RegistriesConfig", "RegistryClient", "RegistryError", "Rootfs", "RootfsError",
    "RootfsManager", "StoreError", "auths_from_secrets", "default_pull_policy", "find_credentials",
    "host_platform", "import_archive", "normalize", "overlay_supported", "parse",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
