"""Image references the Docker way: `nginx` is `docker.io/library/nginx:latest`.

The grammar is the one of the distribution project's reference package: an optional registry host (a
first component with a `.` or `:` in it, or `localhost`), lower-case path components, an optional tag and
an optional digest.  A reference with both a tag and a digest is pulled by its digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}")
_HEX64 = re.compile(r"[a-f0-9]{64}")


class InvalidReference(ValueError):
    """The text is no image reference; str() is the distribution library's message."""


@dataclass(frozen=True)
class Reference:
    domain: str            # "docker.io", "registry.k8s.io", "127.0.0.1:5000"
    path: str              # "library/nginx"
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository: `docker.io/library/nginx`."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    @property
    def familiar(self) -> str:
        """The short form people type: `nginx:latest`, `bitnami/redis:7`, `quay.io/x/y:v1`."""
        return familiar_name(self.name) + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


def familiar_name(name: str) -> str:
    if name.startswith(DOCKER_HUB + "/"):
        rest = name[len(DOCKER_HUB) + 1:]
        return rest.removeprefix("library/") if rest.count("/") == 1 else rest
    return name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DOCKER_HUB, name
    else:
        domain, remainder = first, rest
    if domain in ("index.docker.io",):
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Normalise an image name; `default_tag` adds `:latest` when there is neither tag nor digest."""
    if not text or text != text.strip():
        raise InvalidReference("invalid reference format")
    if _HEX64.fullmatch(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference("invalid reference format")
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and len(hexpart) != 64:
            raise InvalidReference("invalid checksum digest length")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference("invalid reference format")
    if not rest:
        raise InvalidReference("invalid reference format")
    domain, path = _split_domain(rest)
    if not _DOMAIN.fullmatch(domain):
        raise InvalidReference("invalid reference format")
    for part in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(part):
            if part.lower() != part and _PATH_COMPONENT.fullmatch(part.lower()):
                raise InvalidReference(f"invalid reference format: repository name ({path}) must be lowercase")
            raise InvalidReference("invalid reference format")
    if len(domain) + 1 + len(path) > NAME_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_MAX} characters")
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def normalize(text: str) -> str:
    """`nginx` → `docker.io/library/nginx:latest`."""
    return str(parse(text))


def registry_host(domain: str) -> str:
    """The host:port to talk to for a reference's domain (Docker Hub's API is not at docker.io)."""
    return "registry-1.docker.io" if domain == DOCKER_HUB else domain
