import pytest
from aiohttp import web

from kubelite.pki import ensure_cluster_pki, peer_identity, server_ssl_context

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@pytest.fixture
def pki(tmp_path):
    return ensure_cluster_pki(str(tmp_path / "data"))


class Server:
    def __init__(self, pki):
        self.pki = pki
        self.seen: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _whoami(self, request: web.Request) -> web.Response:
        transport = request.transport
        from_dict = peer_identity(transport.get_extra_info("peercert"))
        from_obj = peer_identity(transport.get_extra_info("ssl_object"))
        seen = {
            "path": request.path,
            "identity": from_dict,
            "identity_obj": from_obj,
            "authorization": request.headers.get("Authorization"),
        }
        self.seen.append(seen)
        if request.path.rstrip("/") == "/version":
            return web.json_response(VERSION)
        return web.json_response(
            {"identity": list(from_dict) if from_dict else None, "authorization": seen["authorization"]}
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._whoami)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=server_ssl_context(self.pki))
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
async def server(pki):
    srv = Server(pki)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
