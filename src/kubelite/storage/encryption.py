"""Encryption at rest: upstream's `EncryptionConfiguration` (apiserver.config.k8s.io/v1) and a Store wrapper.

The wrapper sits around any backend (SQLite, etcd): values under the configured resources are encrypted on
write by the first provider of their entry and decrypted on read by whichever provider's prefix they carry.
Stored bytes have upstream's layout, so a value written here decrypts with the same key on a real apiserver:

    aescbc     k8s:enc:aescbc:v1:<key>:    + 16-byte IV + AES-CBC(PKCS#7-padded plaintext)
    aesgcm     k8s:enc:aesgcm:v1:<key>:    + 12-byte nonce + AES-GCM(plaintext, AAD = the storage key)
    secretbox  k8s:enc:secretbox:v1:<key>: + 24-byte nonce + XSalsa20-Poly1305 box
    identity   (no prefix)                 the plaintext

A value that no configured provider can read is an InternalError (500) for that object only, with upstream's
messages; the rest of the API keeps working.  Key rotation: put the new key first, rewrite the objects
(`kubectl get secrets -A -o json | kubectl replace -f -`).  Old plaintext or old-key versions then survive in
the store's history and, for SQLite, in the WAL and free pages: once rewrites of stale values go quiet the
wrapper compacts the history to the current revision and asks the backend to checkpoint and VACUUM
(`scrub()`, also callable directly).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..api import errors
from .interface import Event, KeyValue, ListResult, RevisionMismatchError, Store, Watch

log = logging.getLogger(__name__)

ENCRYPTED_MARK = b"k8s:enc:"
API_VERSIONS = ("apiserver.config.k8s.io/v1",)
AES_KEY_SIZES = (16, 24, 32)
SECRETBOX_KEY_SIZES = (32,)
PROVIDERS = ("aescbc", "aesgcm", "secretbox", "identity", "kms")
SCRUB_QUIET_SECONDS = 2.0  # how long rewrites of stale values must pause before the history is scrubbed


class TransformError(Exception):
    """A value could not be decrypted (upstream's transformer errors, same wording)."""


# ---------------------------------------------------------------- value transformers


class AESCBC:
    name = "aescbc"

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encrypt(self, data: bytes, _context: bytes) -> bytes:
        iv = os.urandom(16)
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv + enc.update(padded) + enc.finalize()

    def decrypt(self, data: bytes, _context: bytes) -> bytes:
        if len(data) < 16:
            raise TransformError("the stored data was shorter than the required size")
        iv, body = data[:16], data[16:]
        if len(body) % 16:
            raise TransformError("the stored data is not a multiple of the block size")
        dec = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
        plain = dec.update(body) + dec.finalize()
        pad = plain[-1] if plain else 0
        if pad == 0 or pad > len(plain):
            raise TransformError("invalid PKCS7 data (empty or not padded)")
        if plain[-pad:] != bytes([pad]) * pad:
            raise TransformError("invalid padding on input")
        return plain[:-pad]


class AESGCMProvider:
    name = "aesgcm"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, context)

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        if len(data) < 12:
            raise TransformError("the stored data was shorter than the required size")
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(data[:12], data[12:], context)
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class Secretbox:
    name = "secretbox"

    def __init__(self, key: bytes) -> None:
        from nacl.secret import SecretBox

        self._box = SecretBox(key)

    def encrypt(self, data: bytes, _context: bytes) -> bytes:
        nonce = os.urandom(24)
        return bytes(self._box.encrypt(data, nonce))  # nonce + box, as Go's secretbox.Seal(nonce, ...)

    def decrypt(self, data: bytes, _context: bytes) -> bytes:
        from nacl.exceptions import CryptoError

        if len(data) < 24 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._box.decrypt(data[24:], data[:24])
        except CryptoError:
            raise TransformError("output array was not large enough for encryption") from None


class Identity:
    name = "identity"

    def encrypt(self, data: bytes, _context: bytes) -> bytes:
        return data

    def decrypt(self, data: bytes, _context: bytes) -> bytes:
        # JSON starts with '{' and protobuf with 'k8s\x00'; 'k8s:enc:' is reserved for encrypted data
        if data.startswith(ENCRYPTED_MARK):
            raise TransformError("identity transformer tried to read encrypted data")
        return data


@dataclass(frozen=True)
class Prefixed:
    prefix: bytes
    cipher: Any  # AESCBC | AESGCMProvider | Secretbox | Identity
    key_name: str = ""


class ResourceTransformer:
    """One resources entry: the first provider (first key) writes, every provider reads (first prefix match)."""

    def __init__(self, prefixed: list[Prefixed]) -> None:
        self.prefixed = prefixed
        self.writer = prefixed[0]

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return self.writer.prefix + self.writer.cipher.encrypt(data, context)

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when a provider other than the writing one read it."""
        problems: list[str] = []
        for index, p in enumerate(self.prefixed):
            if not data.startswith(p.prefix):
                continue
            try:
                plain = p.cipher.decrypt(data[len(p.prefix):], context)
            except TransformError as e:
                if not p.prefix:  # identity seeing encrypted data lets the later providers try
                    continue
                problems.append(str(e))
                continue
            return plain, index != 0
        if problems:
            raise TransformError(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        raise TransformError("no matching prefix found")


class DefaultTransformer:
    """Resources the configuration does not name: stored as they are, never read when encrypted."""

    writer = Prefixed(b"", Identity())

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        return data

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if data.startswith(ENCRYPTED_MARK):
            raise TransformError("identity transformer tried to read encrypted data")
        return data, False


DEFAULT = DefaultTransformer()


# ---------------------------------------------------------------- the configuration file


@dataclass
class EncryptionConfig:
    # (group, resource) → transformer; group or resource may be "*" (wildcards as upstream: "*.apps", "*.*")
    rules: dict[tuple[str, str], ResourceTransformer] = field(default_factory=dict)

    def transformer_for(self, group: str, resource: str):
        for candidate in ((group, resource), (group, "*"), ("*", "*")):
            t = self.rules.get(candidate)
            if t is not None:
                return t
        return DEFAULT

    @property
    def empty(self) -> bool:
        return not self.rules


def _parse_group_resource(text: str) -> tuple[str, str]:
    resource, _, group = text.partition(".")
    return group, resource


def _decode_key(raw: Any, path: str, sizes: tuple[int, ...], problems: list[str]) -> bytes | None:
    if not isinstance(raw, str) or not raw:
        problems.append(f"{path}.secret: Required value: secret is a mandatory field for a key")
        return None
    try:
        secret = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        problems.append(f'{path}.secret: Invalid value: "REDACTED": secrets must be base64 encoded')
        return None
    if len(secret) not in sizes:
        problems.append(f'{path}.secret: Invalid value: "REDACTED": secret is not of the expected length, '
                        f"got {len(secret)}, expected one of [{' '.join(str(s) for s in sizes)}]")
        return None
    return secret


def _provider(entry: Any, path: str, problems: list[str]) -> list[Prefixed]:
    if not isinstance(entry, dict):
        problems.append(f"{path}: Invalid value: provider does not contain any of the expected providers: "
                        "KMS, AESGCM, AESCBC, Secretbox, Identity")
        return []
    found = [k for k in entry if k in PROVIDERS]
    if not found:
        problems.append(f"{path}: Invalid value: provider does not contain any of the expected providers: "
                        "KMS, AESGCM, AESCBC, Secretbox, Identity")
        return []
    if len(found) > 1:
        problems.append(f"{path}: Invalid value: more than one provider specified in a single element, "
                        "should split into different list elements")
        return []
    kind = found[0]
    if kind == "identity":
        return [Prefixed(b"", Identity())]
    if kind == "kms":
        problems.append(f"{path}.kms: Unsupported value: KMS providers are not available in kubelite")
        return []
    sizes = SECRETBOX_KEY_SIZES if kind == "secretbox" else AES_KEY_SIZES
    keys = (entry.get(kind) or {}).get("keys") or []
    if not keys:
        problems.append(f"{path}.{kind}.keys: Required value: at least one keys is required")
        return []
    out = []
    for i, key in enumerate(keys):
        kpath = f"{path}.{kind}.keys[{i}]"
        name = (key or {}).get("name") if isinstance(key, dict) else None
        if not name:
            problems.append(f"{kpath}.name: Required value: name is a mandatory field for a key")
        secret = _decode_key((key or {}).get("secret") if isinstance(key, dict) else None, kpath, sizes, problems)
        if not name or secret is None:
            continue
        cipher = {"aescbc": AESCBC, "aesgcm": AESGCMProvider, "secretbox": Secretbox}[kind](secret)
        out.append(Prefixed(f"k8s:enc:{kind}:v1:{name}:".encode(), cipher, name))
    return out


def parse_config(doc: Any) -> EncryptionConfig:
    """A parsed EncryptionConfiguration document; ValueError lists every problem, as upstream's validation."""
    if not isinstance(doc, dict):
        raise ValueError("EncryptionConfiguration can't be nil")
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if kind != "EncryptionConfiguration" or api_version not in API_VERSIONS:
        raise ValueError(f'no kind "{kind}" is registered for version "{api_version}"'
                         if kind or api_version else "Object 'Kind' is missing in the encryption configuration")
    entries = doc.get("resources") or []
    problems: list[str] = []
    if not entries:
        raise ValueError("resources: Required value: at least one resources is required")
    config = EncryptionConfig()
    seen_wildcards: list[str] = []
    for i, entry in enumerate(entries):
        rpath, ppath = f"resources[{i}].resources", f"resources[{i}].providers"
        names = (entry or {}).get("resources") or []
        providers = (entry or {}).get("providers") or []
        if not names:
            problems.append(f"{rpath}: Required value: at least one {rpath} is required")
        if not providers:
            problems.append(f"{ppath}: Required value: at least one {ppath} is required")
        prefixed: list[Prefixed] = []
        for j, p in enumerate(providers):
            prefixed.extend(_provider(p, f"{ppath}[{j}]", problems))
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                problems.append(f"{rpath}[{j}]: Required value: resource name missing")
                continue
            if name != name.lower():
                problems.append(f'{rpath}[{j}]: Invalid value: "{name}": resource name should not contain any '
                                "upper case characters")
                continue
            if name == "*":
                problems.append(f'{rpath}[{j}]: Invalid value: "*": use \'*.\' to encrypt all the resources '
                                "from core API group or *.* to encrypt all resources")
                continue
            if name in ("events", "events.events.k8s.io"):
                problems.append(f'{rpath}[{j}]: Invalid value: "{name}": resource "{name}" cannot be encrypted')
                continue
            group, resource = _parse_group_resource(name)
            masked = next((w for w in seen_wildcards if w == "*.*" or (resource != "*" and w == f"*.{group}")),
                          None)
            if masked is not None:
                problems.append(f'{rpath}[{j}]: Invalid value: "{name}": resource "{name}" is masked by '
                                f'earlier rule "{masked}"')
                continue
            if resource == "*":
                seen_wildcards.append(name if name != "*." else "*.")
            if prefixed:
                config.rules.setdefault((group, resource), ResourceTransformer(prefixed))
    if problems:
        raise ValueError("; ".join(problems))
    return config


def load_config(path: str) -> EncryptionConfig:
    """Read an `--encryption-provider-config` file (YAML or JSON). ValueError with upstream-style text."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f'error while parsing encryption provider configuration file "{path}": '
                         f"{e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f'error while parsing encryption provider configuration file "{path}": {e}') from None
    try:
        return parse_config(doc)
    except ValueError as e:
        raise ValueError(f'error while parsing encryption provider configuration file "{path}": '
                         f"error while parsing file: {e}") from None


# ---------------------------------------------------------------- the Store wrapper


class KeyResources:
    """Storage key → (group, resource), from the served types' storage prefixes (CRDs included)."""

    def __init__(self, registry) -> None:
        self._registry = registry
        self._by_prefix: dict[str, tuple[str, str]] = {}
        self._count = -1

    def _refresh(self) -> None:
        types = list(self._registry)
        if len(types) == self._count:
            return
        self._count = len(types)
        self._by_prefix = {rt.storage_prefix: (rt.group, rt.resource) for rt in types}

    def __call__(self, key: str) -> tuple[str, str] | None:
        for _ in range(2):
            cut = len(key)
            for _depth in range(3):  # "<prefix><name>", "<prefix><ns>/<name>"
                cut = key.rfind("/", 0, cut)
                if cut <= 0:
                    break
                found = self._by_prefix.get(key[:cut + 1])
                if found is not None:
                    return found
            self._refresh()
            if not self._by_prefix:
                break
        return None


class _DecryptingWatch(Watch):
    def __init__(self, inner: Watch, store: EncryptedStore) -> None:
        self._inner = inner
        self._store = store

    async def _events(self) -> AsyncIterator[Event]:
        decrypt = self._store._plain
        async for ev in self._inner:
            if ev.value is None and ev.prev_value is None:
                yield ev
                continue
            value = None if ev.value is None else decrypt(ev.key, ev.value)[0]
            prev = None if ev.prev_value is None else decrypt(ev.key, ev.prev_value)[0]
            yield Event(ev.type, ev.key, value, prev, ev.revision, ev.create_revision)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def close(self) -> None:
        await self._inner.close()


class EncryptedStore(Store):
    """Encrypts values of the configured resources on write and decrypts every value on read.

    `resource_of(key)` names the (group, resource) a storage key belongs to (None: not a resource, stored as
    is).  Reads go through the configuration even for unconfigured resources, so encrypted data whose key is
    gone answers upstream's 500 instead of garbage."""

    def __init__(self, inner: Store, config: EncryptionConfig | None,
                 resource_of: Callable[[str], tuple[str, str] | None], *,
                 scrub_after: float = SCRUB_QUIET_SECONDS) -> None:
        self.inner = inner
        self.config = config or EncryptionConfig()
        self._resource_of = resource_of
        self._by_dir: dict[str, Any] = {}
        self._stale: set[str] = set()
        self._scrub_after = scrub_after
        self._scrub_task: asyncio.Task | None = None
        self.scrubs = 0  # how many times the history was scrubbed (for tests and logs)

    def __getattr__(self, name: str) -> Any:  # backend extras (checkpoint, path, …)
        return getattr(self.inner, name)

    # ------------------------------------------------------------ transformer lookup

    def transformer(self, key: str):
        cut = key.rfind("/")
        directory = key[:cut + 1]
        t = self._by_dir.get(directory)
        if t is None:
            gr = self._resource_of(key)
            t = DEFAULT if gr is None or self.config.empty else self.config.transformer_for(*gr)
            self._by_dir[directory] = t
        return t

    def _plain(self, key: str, value: bytes) -> tuple[bytes, bool]:
        if not self.config.rules and not value.startswith(ENCRYPTED_MARK):
            return value, False
        try:
            plain, stale = self.transformer(key).from_storage(value, key.encode())
        except TransformError as e:
            raise errors.internal(str(e)) from None
        if stale:
            self._stale.add(key)
        return plain, stale

    def _kv(self, kv: KeyValue | None) -> KeyValue | None:
        if kv is None:
            return None
        plain, _ = self._plain(kv.key, kv.value)
        return kv if plain is kv.value else KeyValue(kv.key, plain, kv.create_revision, kv.mod_revision)

    def _stored(self, key: str, value: bytes) -> bytes:
        if not self.config.rules:
            return value
        return self.transformer(key).to_storage(bytes(value), key.encode())

    def is_stale(self, key: str) -> bool:
        """Whether the stored value of key was last read through a provider other than the writing one:
        an update must then be written even when the object is unchanged (upstream's GuaranteedUpdate)."""
        return key in self._stale

    def _wrote(self, key: str) -> None:
        if key in self._stale:
            self._stale.discard(key)
            self._schedule_scrub()

    # ------------------------------------------------------------ Store

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        if self._scrub_task is not None:
            self._scrub_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scrub_task
        await self.inner.close()

    @property
    def current_revision(self) -> int:
        return self.inner.current_revision

    @property
    def compacted_revision(self) -> int:
        return self.inner.compacted_revision

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self._kv(await self.inner.get(key, revision))

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = "") -> ListResult:
        result = await self.inner.list(prefix, revision=revision, limit=limit, start_key=start_key)
        if not self.config.rules and not any(kv.value.startswith(ENCRYPTED_MARK) for kv in result.items):
            return result
        items = []
        for kv in result.items:
            try:
                items.append(self._kv(kv))
            except errors.ApiError as e:
                raise errors.internal(f'unable to transform key "{kv.key}": '
                                      f'{e.message.removeprefix("Internal error occurred: ")}') from None
        return ListResult(items, result.revision, result.more, result.remaining)  # type: ignore[arg-type]

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, self._stored(key, value))
        return KeyValue(key, bytes(value), kv.create_revision, kv.mod_revision)

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        try:
            kv = await self.inner.update(key, self._stored(key, value), expected_revision)
        except RevisionMismatchError as e:
            raise RevisionMismatchError(key, self._kv(e.current)) from None
        self._wrote(key)
        return KeyValue(key, bytes(value), kv.create_revision, kv.mod_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        try:
            prev, revision = await self.inner.delete(key, expected_revision)
        except RevisionMismatchError as e:
            raise RevisionMismatchError(key, self._kv(e.current)) from None
        self._wrote(key)
        try:
            return self._kv(prev), revision  # type: ignore[return-value]
        except errors.ApiError:  # gone now; what it held cannot be shown
            return prev, revision

    async def watch(self, prefix: str, from_revision: int) -> Watch:
        return _DecryptingWatch(await self.inner.watch(prefix, from_revision), self)

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    # ------------------------------------------------------------ removing old copies

    def _schedule_scrub(self) -> None:
        if self._scrub_task is not None and not self._scrub_task.done():
            self._scrub_task.cancel()  # debounce: restart the quiet period
        self._scrub_task = asyncio.get_running_loop().create_task(self._scrub_later())

    async def _scrub_later(self) -> None:
        await asyncio.sleep(self._scrub_after)
        try:
            await self.scrub()
        except Exception:
            log.exception("scrubbing the store after re-encryption failed")

    async def scrub(self) -> None:
        """Drop every superseded version (compact to now), then checkpoint and VACUUM when the backend can:
        after a rewrite, no plaintext or old-key copy is left in the history, the WAL or free pages."""
        revision = self.inner.current_revision
        if revision > self.inner.compacted_revision:
            await self.inner.compact(revision)
        checkpoint = getattr(self.inner, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint(vacuum=True)
        self.scrubs += 1
        log.info("store scrubbed after re-encryption: history compacted at %d, file vacuumed", revision)


def wrap_store(inner: Store, config_path: str | None, registry) -> EncryptedStore:
    """The store the API server uses: `inner` behind the configuration of `--encryption-provider-config`."""
    config = load_config(config_path) if config_path else None
    return EncryptedStore(inner, config, KeyResources(registry))
