"""A docker-registry on 127.0.0.1 (session-wide) holding images built from busybox-static."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field

import pytest

from images.build_test_image import (
    Image,
    LocalRegistry,
    build_image,
    busybox_entries,
    busybox_image,
    httpd_image,
    make_tar,
    push_image,
    push_index,
)
from kubelite.kubelet.images import ImageStore, RegistriesConfig, RegistryClient


@dataclass
class Pushed:
    registry: LocalRegistry
    digests: dict[str, str] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.registry.host

    def mirror_config(self, **kw) -> RegistriesConfig:
        """docker.io mirrored to the local registry, no fallback to the internet."""
        return RegistriesConfig.from_dict({"mirrors": {"docker.io": {"endpoint": [self.registry.url]}}},
                                          disable_default_endpoint=True, **kw)


def _arch_image(arch: str) -> Image:
    return build_image([make_tar(busybox_entries())], {"Env": [f"ARCH={arch}"], "Cmd": ["sh"]}, arch=arch)


async def _push_all(p: Pushed) -> None:
    async with RegistryClient() as c:
        h = p.host
        todo = {
            f"{h}/library/busybox:latest": busybox_image(),
            f"{h}/library/httpd:latest": httpd_image(),
            f"{h}/library/docker-v2:latest": busybox_image(docker=True),
            f"{h}/gotok8s/pause:3.9": busybox_image(),
            f"{h}/mirror/rewritten:1.0": busybox_image(),
        }
        for ref, img in todo.items():
            p.digests[ref] = await push_image(c, ref, img)
            p.images[ref] = img
        multi = {"linux/arm64/v8": _arch_image("arm64"), "linux/amd64": _arch_image("amd64")}
        p.images["multi"] = multi["linux/amd64"]
        p.images["multi-arm64"] = multi["linux/arm64/v8"]
        p.digests["multi"] = await push_index(c, f"{h}/library/multi", "latest", multi)


@pytest.fixture(scope="session")
def pushed():
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (Debian package) is not installed")
    reg = LocalRegistry().start()
    p = Pushed(reg)
    try:
        asyncio.run(_push_all(p))
        yield p
    finally:
        reg.stop()


@pytest.fixture
def store(tmp_path):
    return ImageStore(str(tmp_path / "images"))
