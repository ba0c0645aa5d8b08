"""Images for the kubelet's real runtime: references, the registry client, the node's image store,
container root filesystems, archive import, and pulling with upstream's policies and reasons."""

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

__all__ = [
    "ERR_IMAGE_NEVER_PULL", "ERR_IMAGE_PULL", "IMAGE_PULL_BACKOFF", "INVALID_IMAGE_NAME", "ImagePullError",
    "ImagePuller", "ImageRecord", "ImageStore", "ImportError_", "InvalidReference", "Platform", "PullBackOff",
    "Reference", "RegistriesConfig", "RegistryClient", "RegistryError", "Rootfs", "RootfsError",
    "RootfsManager", "StoreError", "auths_from_secrets", "default_pull_policy", "find_credentials",
    "host_platform", "import_archive", "normalize", "overlay_supported", "parse",
]
