"""A client of the OCI distribution API: manifests, blobs, auth, mirrors — and push, for building test images.

Endpoints, rewrites, credentials and TLS settings come from a k3s-style `registries.yaml`:

    mirrors:
      docker.io:
        endpoint: ["http://127.0.0.1:5000"]
        rewrite: {"^library/(.*)": "mirror/$1"}
    configs:
      "127.0.0.1:5000":
        auth: {username: u, password: p}        # or auth: <base64 user:pass>, identity_token
        tls: {ca_file: /x/ca.pem, cert_file: …, key_file: …, insecure_skip_verify: false}

As containerd does, a registry's mirrors are tried in order and its default endpoint last (unless
`disable_default_endpoint`); rewrites apply to mirrors only.  Errors carry containerd's wording, which the
kubelet passes through to the pod's status.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import ipaddress
import json
import os
import platform as _platform
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .reference import DOCKER_HUB, DOCKER_HUB_ALIASES, Reference, parse, registry_host

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

AuthConfigs = list[Mapping[str, Any]]   # decoded dockerconfigjson documents ({"auths": {...}})


class RegistryError(Exception):
    """A failed registry operation.  `kind` is "NotFound", "Unauthorized", "Unavailable" or "Failed"."""

    def __init__(self, message: str, kind: str = "Failed", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


# ---------------------------------------------------------------- platform


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


_ARCH = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
         "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", ""), "i686": ("386", ""),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


def host_platform() -> Platform:
    arch, variant = _ARCH.get(_platform.machine().lower(), (_platform.machine().lower(), ""))
    return Platform("linux", arch, variant)


def select_platform(index: Mapping[str, Any], want: Platform) -> Mapping[str, Any] | None:
    """The index entry for `want`: same os and architecture, the exact variant preferred (arm64's
    variant defaults to v8), attestation entries (`unknown/unknown`) never chosen."""
    best, best_score = None, -1
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") != want.os or p.get("architecture") != want.architecture:
            continue
        if m.get("mediaType") and m["mediaType"] not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        variant = p.get("variant", "")
        if want.architecture == "arm64" and variant in ("", "v8") and want.variant in ("", "v8"):
            score = 2
        elif variant == want.variant:
            score = 2
        elif not variant:
            score = 1
        else:
            continue
        if score > best_score:
            best, best_score = m, score
    return best


# ---------------------------------------------------------------- registries.yaml


def _go_replacement(template: str) -> str:
    """Go's `$1` / `${name}` in a regexp replacement, as Python's `\\g<1>`."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: f"\\g<{m.group(1) or m.group(2)}>",
                  template.replace("\\", "\\\\"))


@dataclass
class Endpoint:
    url: str                    # API root, e.g. "http://127.0.0.1:5000/v2"
    host: str                   # "127.0.0.1:5000", the key of `configs`
    rewrites: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    is_default: bool = False

    def repository(self, path: str) -> str:
        for pattern, replacement in self.rewrites:
            if pattern.search(path):
                return pattern.sub(replacement, path, count=1)
        return path


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _endpoint_from_url(text: str, rewrites: list[tuple[re.Pattern[str], str]]) -> Endpoint:
    if "://" not in text:
        text = "https://" + text
    u = urllib.parse.urlsplit(text)
    path = u.path.rstrip("/")
    root = path if path and path != "/v2" else "/v2"
    return Endpoint(f"{u.scheme}://{u.netloc}{root}", u.netloc, rewrites)


@dataclass
class RegistriesConfig:
    mirrors: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    disable_default_endpoint: bool = False

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None, *, disable_default_endpoint: bool = False) -> RegistriesConfig:
        doc = doc or {}
        mirrors = {str(k): dict(v or {}) for k, v in (doc.get("mirrors") or {}).items()}
        configs = {str(k): dict(v or {}) for k, v in (doc.get("configs") or {}).items()}
        for name, m in mirrors.items():
            for pattern in (m.get("rewrite") or {}):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"registries: mirror {name}: bad rewrite pattern {pattern!r}: {e}") from None
        return cls(mirrors, configs, disable_default_endpoint)

    @classmethod
    def load(cls, path: str | None, *, disable_default_endpoint: bool = False) -> RegistriesConfig:
        if not path:
            return cls(disable_default_endpoint=disable_default_endpoint)
        from ...client import yamlfiles

        return cls.from_dict(yamlfiles.load(path), disable_default_endpoint=disable_default_endpoint)

    def endpoints(self, domain: str) -> list[Endpoint]:
        mirror = self.mirrors.get(domain)
        if mirror is None and domain == DOCKER_HUB:
            mirror = next((self.mirrors[a] for a in DOCKER_HUB_ALIASES if a in self.mirrors), None)
        if mirror is None:
            mirror = self.mirrors.get("*")
        out: list[Endpoint] = []
        if mirror:
            rewrites = [(re.compile(p), _go_replacement(r)) for p, r in (mirror.get("rewrite") or {}).items()]
            out = [_endpoint_from_url(str(e), rewrites) for e in (mirror.get("endpoint") or [])]
        if not (self.disable_default_endpoint and out):
            default = self.default_endpoint(domain)
            if not any(e.url == default.url and not e.rewrites for e in out):
                out.append(default)
        return out

    def default_endpoint(self, domain: str) -> Endpoint:
        host = registry_host(domain)
        scheme = "http" if _is_loopback(host) and not self.configs.get(host, {}).get("tls") else "https"
        return Endpoint(f"{scheme}://{host}/v2", host, [], is_default=True)

    def host_config(self, host: str) -> Mapping[str, Any]:
        return self.configs.get(host) or self.configs.get("*") or {}


# ---------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""


def _creds_from_entry(entry: Mapping[str, Any]) -> Credentials | None:
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth") and not user:
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
    ident = entry.get("identitytoken") or entry.get("identity_token") or ""
    token = entry.get("registrytoken") or entry.get("registry_token") or ""
    if not (user or ident or token):
        return None
    return Credentials(user, password, ident, token)


def _canonical_host(host: str) -> str:
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _key_matches(key: str, host: str, path: str) -> int:
    """How well a dockerconfig key matches host/path (0: not at all; longer path prefixes win)."""
    text = key if "://" in key else "//" + key
    u = urllib.parse.urlsplit(text)
    key_host = _canonical_host(u.netloc.lower())
    key_path = u.path.strip("/")
    if key_path in ("v1", "v2") or key_path.startswith(("v1/", "v2/")):
        key_path = ""
    if "*" in key_host:
        kh, _, kport = key_host.partition(":")
        hh, _, hport = host.partition(":")
        if kport != hport or len(kh.split(".")) != len(hh.split(".")):
            return 0
        if not all(re.fullmatch(re.escape(k).replace(r"\*", "[^.]*"), h)
                   for k, h in zip(kh.split("."), hh.split("."), strict=True)):
            return 0
    elif key_host != host:
        return 0
    if key_path and not (path == key_path or path.startswith(key_path + "/")):
        return 0
    return 1 + len(key_path)


def find_credentials(auths: Iterable[Mapping[str, Any]] | None, host: str, path: str = "") -> Credentials | None:
    """Credentials for `host` (and repository `path`) from decoded dockerconfigjson documents (or their
    `auths` maps); the most specific key wins, the first document on a tie."""
    host = _canonical_host(host.lower())
    best, best_score = None, 0
    for doc in auths or []:
        entries = doc.get("auths", doc) if isinstance(doc, Mapping) else {}
        for key, entry in (entries or {}).items():
            if not isinstance(entry, Mapping):
                continue
            score = _key_matches(str(key), host, path)
            if score > best_score:
                creds = _creds_from_entry(entry)
                if creds:
                    best, best_score = creds, score
    return best


def auths_from_secrets(secrets: Iterable[Mapping[str, Any]]) -> AuthConfigs:
    """Decoded auth documents from Secret objects of type kubernetes.io/dockerconfigjson (or dockercfg)."""
    out: AuthConfigs = []
    for s in secrets:
        data = s.get("data") or {}
        for key in (".dockerconfigjson", ".dockercfg"):
            if key in data:
                try:
                    doc = json.loads(base64.b64decode(data[key]))
                except (ValueError, TypeError):
                    continue
                out.append(doc if key == ".dockerconfigjson" else {"auths": doc})
    return out


# ---------------------------------------------------------------- the client


@dataclass
class ResolvedImage:
    ref: Reference
    endpoint: Endpoint
    repository: str             # the path asked of the endpoint (after rewrites)
    repo_digest: str            # digest of what the tag points to (an index, or the manifest)
    manifest_digest: str        # the platform's image manifest
    manifest: dict[str, Any]
    manifest_bytes: bytes
    media_type: str
    auths: AuthConfigs | None = None

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("layers") or [])


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                            for m in _CHALLENGE_PARAM.finditer(rest)}


def _basic(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _server_message(body: bytes) -> str:
    try:
        errs = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return ""
    parts = []
    for e in errs:
        code, msg = str(e.get("code", "")).lower(), e.get("message", "")
        parts.append(f"{code}: {msg}" if code else msg)
    return "; ".join(parts)


def _connect_message(method: str, url: str, exc: BaseException) -> str:
    host = urllib.parse.urlsplit(url).netloc
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    err = getattr(cause, "errno", None)
    if err == errno.ECONNREFUSED or "Connect call failed" in str(exc):
        detail = f"dial tcp {host}: connect: connection refused"
    elif isinstance(cause, socket.gaierror) or "Name or service not known" in str(exc) \
            or "Temporary failure in name resolution" in str(exc):
        detail = f"dial tcp: lookup {host.rsplit(':', 1)[0]}: no such host"
    elif isinstance(exc, asyncio.TimeoutError | TimeoutError):
        detail = f"dial tcp {host}: i/o timeout"
    elif isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        code = getattr(cause, "verify_code", None)
        detail = "tls: failed to verify certificate: x509: " + (
            "certificate signed by unknown authority" if code in (18, 19, 20, 21) else
            str(getattr(cause, "verify_message", None) or "certificate verify failed"))
    elif isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        detail = f"tls: {getattr(cause, 'reason', None) or cause}"
    else:
        detail = str(exc) or type(exc).__name__
    return f"failed to do request: {method.capitalize()} \"{url}\": {detail}"


class RegistryClient:
    """One per kubelet; safe to share between concurrent pulls.  Call `close()` when done."""

    def __init__(self, config: RegistriesConfig | None = None, *, platform: Platform | None = None,
                 timeout: float = 120.0, connect_timeout: float = 10.0):
        self.config = config or RegistriesConfig()
        self.platform = platform or host_platform()
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}   # (host, scope) → (header, expiry)
        self._ssl: dict[str, ssl.SSLContext | bool] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False,
                                                  connector=aiohttp.TCPConnector(limit=16, ttl_dns_cache=60))
        return self._session

    def _ssl_for(self, host: str) -> ssl.SSLContext | bool:
        if host not in self._ssl:
            tls = dict(self.config.host_config(host).get("tls") or {})
            if not tls:
                # aiohttp's own verifying context: the system CAs, loaded once; one context per registry would
                # load them all again (~2 MiB resident each)
                self._ssl[host] = True
                return True
            if tls.get("insecure_skip_verify"):
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
            if tls.get("cert_file"):
                ctx.load_cert_chain(tls["cert_file"], tls.get("key_file") or None)
            self._ssl[host] = ctx
        return self._ssl[host]

    def _credentials(self, ep: Endpoint, ref: Reference | None, repository: str,
                     auths: AuthConfigs | None) -> Credentials | None:
        creds = find_credentials(auths, ep.host, repository)
        if creds is None:
            entry = self.config.host_config(ep.host).get("auth")
            if isinstance(entry, Mapping):
                creds = _creds_from_entry(entry)
        if creds is None and ref is not None and ep.is_default:
            creds = find_credentials(auths, ref.domain, ref.path)
        return creds

    # -- HTTP with the auth dance

    async def _request(self, method: str, ep: Endpoint, repository: str, suffix: str, *,
                       ref: Reference | None = None, auths: AuthConfigs | None = None, push: bool = False,
                       headers: Mapping[str, str] | None = None, data: Any = None, url: str | None = None,
                       ) -> aiohttp.ClientResponse:
        url = url or f"{ep.url}/{repository}/{suffix}"
        scope = f"repository:{repository}:" + ("pull,push" if push else "pull")
        hdrs = dict(headers or {})
        cached = self._tokens.get((ep.host, scope))
        if cached and cached[1] > time.monotonic():
            hdrs["Authorization"] = cached[0]
        for attempt in range(2):
            try:
                resp = await self._sess().request(method, url, headers=hdrs, data=data,
                                                  ssl=self._ssl_for(ep.host) if url.startswith("https") else None)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise RegistryError(_connect_message(method, url, e), "Unavailable") from e
            if resp.status != 401 or attempt == 1:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            await resp.read()
            resp.release()
            creds = self._credentials(ep, ref, repository, auths)
            hdrs["Authorization"] = await self._authorize(ep, challenge, scope, creds)
        raise AssertionError("unreachable")

    async def _authorize(self, ep: Endpoint, challenge: str, scope: str, creds: Credentials | None) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not creds or not creds.username:
                raise RegistryError("failed to authorize: no basic auth credentials", "Unauthorized", 401)
            header = _basic(creds)
            self._tokens[(ep.host, scope)] = (header, time.monotonic() + 3600)
            return header
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryError(f"failed to authorize: unsupported authentication challenge {challenge!r}",
                                "Unauthorized", 401)
        if creds and creds.registry_token:
            return "Bearer " + creds.registry_token
        query = {"scope": params.get("scope") or scope}
        if params.get("service"):
            query["service"] = params["service"]
        realm = params["realm"]
        token_url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        sess = self._sess()
        realm_host = urllib.parse.urlsplit(realm).netloc
        sslctx = self._ssl_for(realm_host) if realm.startswith("https") else None
        kind = "oauth" if creds else "anonymous"
        try:
            if creds and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": "kubelite", **query}
                resp = await sess.post(realm, data=form, ssl=sslctx)
            else:
                hdrs = {"Authorization": _basic(creds)} if creds and creds.username else {}
                resp = await sess.get(token_url, headers=hdrs, ssl=sslctx)
            body = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RegistryError("failed to authorize: failed to fetch " + f"{kind} token: "
                                + _connect_message("GET", token_url, e), "Unavailable") from e
        if resp.status != 200:
            raise RegistryError(f"failed to authorize: failed to fetch {kind} token: unexpected status from "
                                f"GET request to {token_url}: {resp.status} {resp.reason}", "Unauthorized",
                                resp.status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"failed to authorize: failed to fetch {kind} token: no token in the response "
                                f"from {realm}", "Unauthorized")
        header = f"Bearer {token}"
        ttl = float(doc.get("expires_in") or 60)
        self._tokens[(ep.host, scope)] = (header, time.monotonic() + max(ttl - 5, 1))
        return header

    # -- pull

    async def resolve(self, ref: Reference | str, *, auths: AuthConfigs | None = None) -> ResolvedImage:
        """Find the platform's image manifest, trying the registry's endpoints in order."""
        if isinstance(ref, str):
            ref = parse(ref)
        last: RegistryError | None = None
        for ep in self.config.endpoints(ref.domain):
            try:
                return await self._resolve_at(ep, ref, auths)
            except RegistryError as e:
                last = e
        assert last is not None
        raise last

    async def _get_manifest(self, ep: Endpoint, ref: Reference, repository: str, obj: str,
                            auths: AuthConfigs | None) -> tuple[bytes, str]:
        resp = await self._request("GET", ep, repository, f"manifests/{obj}", ref=ref, auths=auths,
                                   headers={"Accept": ACCEPT})
        async with resp:
            body = await resp.read()
            if resp.status == 200:
                media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
                return body, media_type
        msg = _server_message(body)
        if resp.status == 404:
            raise RegistryError(f"{ref}: not found", "NotFound", 404)
        if resp.status in (401, 403):
            raise RegistryError("pull access denied, repository does not exist or may require authorization"
                                + (f": server message: {msg}" if msg else ""), "Unauthorized", resp.status)
        raise RegistryError(f"unexpected status from GET request to {resp.url}: {resp.status} {resp.reason}"
                            + (f": {msg}" if msg else ""), "Failed", resp.status)

    async def _resolve_at(self, ep: Endpoint, ref: Reference, auths: AuthConfigs | None) -> ResolvedImage:
        repository = ep.repository(ref.path)
        body, media_type = await self._get_manifest(ep, ref, repository, ref.object, auths)
        repo_digest = _sha256(body)
        if ref.digest and ref.digest != repo_digest:
            raise RegistryError(f"{ref}: manifest digest mismatch: got {repo_digest}")
        doc = json.loads(body)
        media_type = doc.get("mediaType") or media_type
        if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
            raise RegistryError(f"{ref}: Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
                                "support has been removed")
        if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
            entry = select_platform(doc, self.platform)
            if entry is None:
                raise RegistryError("no match for platform in manifest: not found", "NotFound")
            body, media_type = await self._get_manifest(ep, ref, repository, entry["digest"], auths)
            manifest_digest = _sha256(body)
            if manifest_digest != entry["digest"]:
                raise RegistryError(f"{ref}: manifest digest mismatch: got {manifest_digest}")
            doc = json.loads(body)
            media_type = doc.get("mediaType") or entry.get("mediaType") or media_type
        else:
            manifest_digest = repo_digest
        if "config" not in doc or "layers" not in doc:
            raise RegistryError(f"{ref}: unsupported manifest media type {media_type!r}")
        return ResolvedImage(ref, ep, repository, repo_digest, manifest_digest, doc, body, media_type, auths)

    async def fetch_blob(self, image: ResolvedImage, digest: str, dest: str, *, size: int | None = None) -> None:
        """Stream a blob to `dest`, checking its digest (and size when known); `dest` is removed on failure."""
        algo, _, want = digest.partition(":")
        if algo != "sha256":
            raise RegistryError(f"unsupported digest algorithm {algo!r}")
        resp = await self._request("GET", image.endpoint, image.repository, f"blobs/{digest}", ref=image.ref,
                                   auths=image.auths)
        h = hashlib.sha256()
        n = 0
        try:
            async with resp:
                if resp.status != 200:
                    body = await resp.read()
                    kind = "NotFound" if resp.status == 404 else "Failed"
                    raise RegistryError(f"failed to copy: httpReadSeeker: failed open: unexpected status code "
                                        f"{resp.url}: {resp.status} {resp.reason}"
                                        + (f" - Server message: {m}" if (m := _server_message(body)) else ""),
                                        kind, resp.status)
                with open(dest, "wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        h.update(chunk)
                        n += len(chunk)
                        f.write(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            with contextlib.suppress(OSError):
                os.unlink(dest)
            if isinstance(e, RegistryError):
                raise
            raise RegistryError(f"failed to copy: {e}", "Unavailable") from e
        except RegistryError:
            with contextlib.suppress(OSError):
                os.unlink(dest)
            raise
        if h.hexdigest() != want or (size is not None and n != size):
            os.unlink(dest)
            raise RegistryError(f"failed to copy: digest or size mismatch for {digest}: got sha256:{h.hexdigest()}"
                                f" ({n} bytes)")

    async def fetch_blob_bytes(self, image: ResolvedImage, digest: str) -> bytes:
        resp = await self._request("GET", image.endpoint, image.repository, f"blobs/{digest}", ref=image.ref,
                                   auths=image.auths)
        async with resp:
            body = await resp.read()
            if resp.status != 200:
                raise RegistryError(f"failed to fetch {digest}: unexpected status {resp.status} {resp.reason}",
                                    "NotFound" if resp.status == 404 else "Failed", resp.status)
        if _sha256(body) != digest:
            raise RegistryError(f"failed to fetch {digest}: digest mismatch")
        return body

    # -- push (for building test images and `images push`-like tooling)

    def _push_endpoint(self, ref: Reference) -> Endpoint:
        return self.config.default_endpoint(ref.domain)

    async def push_blob(self, ref: Reference | str, data: bytes, *, auths: AuthConfigs | None = None) -> str:
        """Upload a blob (monolithic POST + PUT) unless the repository has it; returns its digest."""
        if isinstance(ref, str):
            ref = parse(ref)
        ep = self._push_endpoint(ref)
        digest = _sha256(data)
        resp = await self._request("HEAD", ep, ref.path, f"blobs/{digest}", ref=ref, auths=auths, push=True)
        async with resp:
            if resp.status == 200:
                return digest
        resp = await self._request("POST", ep, ref.path, "blobs/uploads/", ref=ref, auths=auths, push=True)
        async with resp:
            await resp.read()
            if resp.status != 202:
                raise RegistryError(f"blob upload: unexpected status {resp.status} {resp.reason}", "Failed",
                                    resp.status)
            location = urllib.parse.urljoin(str(resp.url), resp.headers["Location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        resp = await self._request("PUT", ep, ref.path, "", ref=ref, auths=auths, push=True, url=location,
                                   data=data, headers={"Content-Type": "application/octet-stream"})
        async with resp:
            body = await resp.read()
            if resp.status != 201:
                raise RegistryError(f"blob upload: unexpected status {resp.status} {resp.reason}: "
                                    f"{_server_message(body)}", "Failed", resp.status)
        return digest

    async def push_manifest(self, ref: Reference | str, body: bytes, media_type: str, *,
                            auths: AuthConfigs | None = None) -> str:
        """PUT a manifest or index under the reference's tag (or digest); returns its digest."""
        if isinstance(ref, str):
            ref = parse(ref)
        ep = self._push_endpoint(ref)
        resp = await self._request("PUT", ep, ref.path, f"manifests/{ref.object}", ref=ref, auths=auths,
                                   push=True, data=body, headers={"Content-Type": media_type})
        async with resp:
            text = await resp.read()
            if resp.status != 201:
                raise RegistryError(f"manifest upload: unexpected status {resp.status} {resp.reason}: "
                                    f"{_server_message(text)}", "Failed", resp.status)
        return _sha256(body)
