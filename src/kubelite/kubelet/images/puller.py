"""Pulling images for pods: imagePullPolicy, de-duplicated pulls, back-off, upstream's reasons and events.

    puller = ImagePuller(store, RegistryClient(RegistriesConfig.load(path)))
    record = await puller.ensure_image(container["image"], container.get("imagePullPolicy"),
                                       auths=auths_from_secrets(secrets), backoff_key=f"{pod_uid}_{image}",
                                       record_event=lambda type_, reason, message: ...)

`ensure_image` raises ImagePullError(reason, message) where the kubelet shows a waiting container:
reason "ErrImagePull" right after a failed pull, "ImagePullBackOff" while backing off (10 s doubling to
300 s, as upstream), "ErrImageNeverPull" for an absent image with policy Never, "InvalidImageName".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .reference import InvalidReference, Reference, parse
from .registry import AuthConfigs, RegistryClient, RegistryError, ResolvedImage
from .store import ImageRecord, ImageStore, StoreError

log = logging.getLogger("kubelite.kubelet.images")

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"

PULL_ALWAYS, PULL_IF_NOT_PRESENT, PULL_NEVER = "Always", "IfNotPresent", "Never"

EventSink = Callable[[str, str, str], Any]   # (type "Normal"/"Warning", reason, message)


class ImagePullError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def default_pull_policy(image: str) -> str:
    """The API server's defaulting: Always for `:latest` or no tag, else IfNotPresent."""
    try:
        ref = parse(image, default_tag=False)
    except InvalidReference:
        return PULL_IF_NOT_PRESENT
    if ref.digest:
        return PULL_IF_NOT_PRESENT
    return PULL_ALWAYS if ref.tag in (None, "latest") else PULL_IF_NOT_PRESENT


class PullBackOff:
    """Per-key exponential back-off after failed pulls (upstream: 10 s initial, 300 s cap)."""

    def __init__(self, initial: float = 10.0, cap: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.initial, self.cap, self.clock = initial, cap, clock
        self._entries: dict[str, tuple[float, float]] = {}   # key → (delay, last failure)
        self.last_error: dict[str, str] = {}

    def in_backoff(self, key: str) -> bool:
        e = self._entries.get(key)
        return e is not None and self.clock() - e[1] < e[0]

    def failed(self, key: str, message: str) -> None:
        now = self.clock()
        e = self._entries.get(key)
        delay = self.initial if e is None or now - e[1] > 2 * self.cap else min(e[0] * 2, self.cap)
        self._entries[key] = (delay, now)
        self.last_error[key] = message

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)
        self.last_error.pop(key, None)

    def remaining(self, key: str) -> float:
        e = self._entries.get(key)
        return max(0.0, e[0] - (self.clock() - e[1])) if e else 0.0


@dataclass
class PullResult:
    record: ImageRecord
    seconds: float
    pulled: bool     # False when nothing had to be downloaded


def _config_summary(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("config") or {})


class ImagePuller:
    def __init__(self, store: ImageStore, client: RegistryClient, *, backoff: PullBackOff | None = None,
                 max_concurrent_downloads: int = 3):
        self.store = store
        self.client = client
        self.backoff = backoff or PullBackOff()
        self._inflight: dict[str, asyncio.Future[PullResult]] = {}
        self._downloads = asyncio.Semaphore(max_concurrent_downloads)

    async def ensure_image(self, image: str, pull_policy: str | None = None, *, auths: AuthConfigs | None = None,
                           backoff_key: str | None = None, record_event: EventSink | None = None) -> ImageRecord:
        """The image a container needs, pulled according to its policy.  Raises ImagePullError."""
        def event(type_: str, reason: str, message: str) -> None:
            if record_event is not None:
                try:
                    record_event(type_, reason, message)
                except Exception:  # noqa: BLE001 - an event sink must not break a pull
                    log.exception("recording an image event failed")

        try:
            ref = parse(image)
        except InvalidReference as e:
            msg = f"Failed to apply default image tag {image!r}: couldn't parse image reference {image!r}: {e}"
            msg = msg.replace(f"{image!r}", f'"{image}"')
            event("Warning", "InspectFailed", msg)
            raise ImagePullError(INVALID_IMAGE_NAME, msg) from None
        policy = pull_policy or default_pull_policy(image)
        present = self.store.get_image(str(ref))
        if policy == PULL_NEVER or (policy == PULL_IF_NOT_PRESENT and present is not None):
            if present is not None:
                event("Normal", "Pulled", f'Container image "{image}" already present on machine')
                return present
            msg = f'Container image "{image}" is not present with pull policy of Never'
            event("Warning", "ErrImageNeverPull", msg)
            raise ImagePullError(ERR_IMAGE_NEVER_PULL, msg)
        key = backoff_key or image
        if self.backoff.in_backoff(key):
            msg = f'Back-off pulling image "{image}"'
            event("Normal", "BackOff", msg)
            prev = self.backoff.last_error.get(key)
            raise ImagePullError(IMAGE_PULL_BACKOFF, f"{msg}: {ERR_IMAGE_PULL}: {prev}" if prev else msg)
        event("Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            result = await self.pull(ref, auths=auths)
        except ImagePullError as e:
            event("Warning", "Failed", f'Failed to pull image "{image}": {e.message}')
            self.backoff.failed(key, e.message)
            raise
        self.backoff.succeeded(key)
        waited = time.monotonic() - started
        event("Normal", "Pulled", f'Successfully pulled image "{image}" in {_go_duration(result.seconds)} '
                                  f"({_go_duration(waited)} including waiting). "
                                  f"Image size: {result.record.size} bytes.")
        return result.record

    async def pull(self, image: Reference | str, *, auths: AuthConfigs | None = None) -> PullResult:
        """Pull (or refresh) an image; concurrent pulls of the same reference share one download.
        Raises ImagePullError(ErrImagePull, containerd-style message)."""
        ref = parse(image) if isinstance(image, str) else image
        key = str(ref)
        task = self._inflight.get(key)
        if task is None:
            # A task of its own, so one waiter's cancellation does not cancel the pull the others wait for.
            task = asyncio.ensure_future(self._pull(ref, auths))
            self._inflight[key] = task

            def done(t: asyncio.Future[PullResult]) -> None:
                self._inflight.pop(key, None)
                if not t.cancelled():
                    t.exception()   # retrieved here, re-raised to every waiter by its await

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _pull(self, ref: Reference, auths: AuthConfigs | None) -> PullResult:
        started = time.monotonic()
        try:
            resolved = await self.client.resolve(ref, auths=auths)
        except RegistryError as e:
            raise ImagePullError(ERR_IMAGE_PULL, f'failed to pull and unpack image "{ref}": '
                                                 f'failed to resolve reference "{ref}": {e}') from e
        try:
            record, pulled = await self._fetch(ref, resolved)
        except (RegistryError, StoreError, OSError, ValueError) as e:
            raise ImagePullError(ERR_IMAGE_PULL, f'failed to pull and unpack image "{ref}": {e}') from e
        return PullResult(record, time.monotonic() - started, pulled)

    async def _fetch(self, ref: Reference, resolved: ResolvedImage) -> tuple[ImageRecord, bool]:
        store = self.store
        config_desc = resolved.config
        existing = store.get_image(str(ref))
        if existing is not None and existing.manifest_digest == resolved.manifest_digest:
            return existing, False
        pulled = False
        if not store.has_blob(config_desc["digest"]):
            store.write_blob(await self.client.fetch_blob_bytes(resolved, config_desc["digest"]),
                             config_desc["digest"])
            pulled = True
        config = json.loads(store.read_blob(config_desc["digest"]))
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layers = resolved.layers
        if len(diff_ids) != len(layers):
            raise StoreError(f"image config lists {len(diff_ids)} layers, the manifest {len(layers)}")
        store.write_blob(resolved.manifest_bytes, resolved.manifest_digest)

        async def one(desc: dict[str, Any], diff_id: str) -> bool:
            if store.has_layer(diff_id):
                return False
            digest = desc["digest"]
            if not store.has_blob(digest):
                async with self._downloads:
                    tmp = store.temp_path("dl-")
                    await self.client.fetch_blob(resolved, digest, tmp, size=desc.get("size"))
                    store.commit_blob(tmp, digest)
            await asyncio.to_thread(store.unpack, diff_id, digest)
            return True

        results = await asyncio.gather(*(one(d, x) for d, x in zip(layers, diff_ids, strict=True)),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        pulled = pulled or any(results)
        name = str(ref)
        record = ImageRecord(
            name=name, id=config_desc["digest"], repo_digest=f"{ref.name}@{resolved.repo_digest}",
            manifest_digest=resolved.manifest_digest, config_digest=config_desc["digest"], layers=diff_ids,
            layer_blobs=[{k: d[k] for k in ("digest", "size", "mediaType") if k in d} for d in layers],
            size=int(config_desc.get("size") or 0) + sum(int(d.get("size") or 0) for d in layers),
            created=config.get("created") or "", config=_config_summary(config))
        store.put_image(record)
        return record, pulled

    def forget_backoff(self, key: str) -> None:
        """Drop a key's back-off state (e.g. when its pod is deleted)."""
        self.backoff.succeeded(key)


def _go_duration(seconds: float) -> str:
    """Go's time.Duration text, as the kubelet's events print it (`1.234s`, `512ms`)."""
    if seconds >= 1:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    ms = seconds * 1000
    if ms >= 1:
        return f"{ms:.3f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds * 1e6:.0f}µs"
