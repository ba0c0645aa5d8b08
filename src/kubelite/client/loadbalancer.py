"""A node-local TCP load balancer for the API servers, as k3s's agent runs on 127.0.0.1:6444.

Why here rather than a list of servers inside ApiClient: every client on the machine fails over through it
unchanged, the real kubectl and the official Python client included (a kubeconfig holds one server), TLS
stays end to end (the servers' certificates carry 127.0.0.1), and a dead server costs one refused connect,
not a timeout per client. Each new connection goes to the server that answered last; when it refuses (or
does not answer within `connect_timeout`) the next one is tried. The server list starts from the kubeconfig
and follows the `kubernetes` Service's Endpoints, which list every live API server.

    python -m kubelite.client.loadbalancer --listen 127.0.0.1:6444 https://10.0.0.1:6443 https://10.0.0.2:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

log = logging.getLogger("kubelite.client.loadbalancer")


def _host_port(url: str) -> tuple[str, int]:
    text = url.removeprefix("https://").rstrip("/")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:] or 443)
    host, _, port = text.rpartition(":")
    return host, int(port)


class LoadBalancer:
    def __init__(self, servers: list[str], host: str = "127.0.0.1", port: int = 6444,
                 connect_timeout: float = 1.0) -> None:
        self.servers = [_host_port(s) for s in servers]
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._current = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def set_servers(self, servers: list[tuple[str, int]]) -> None:
        """New backends; the one in use stays first when it is still among them."""
        if not servers:
            return
        current = self.servers[self._current] if self.servers else None
        self.servers = list(servers)
        self._current = self.servers.index(current) if current in self.servers else 0

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        errors = []
        for i in range(len(self.servers)):
            index = (self._current + i) % len(self.servers)
            host, port = self.servers[index]
            try:
                pair = await asyncio.wait_for(asyncio.open_connection(host, port), self.connect_timeout)
            except (OSError, TimeoutError) as e:
                errors.append(f"{host}:{port}: {e or type(e).__name__}")
                continue
            if index != self._current:
                log.warning("API server %s:%d unreachable; now using %s:%d", *self.servers[self._current], host, port)
                self._current = index
            return pair
        raise OSError("no API server reachable: " + "; ".join(errors))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._dial()
        except OSError as e:
            log.warning("%s", e)
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> LoadBalancer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def follow_endpoints(self, client, period: float = 10.0) -> None:
        """Keep the backends equal to the `kubernetes` Endpoints (read through `client`, itself going through
        this balancer)."""
        task = asyncio.create_task(self._follow(client, period))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, client, period: float) -> None:
        from ..api.resources import Registry

        endpoints = Registry().get("", "v1", "endpoints")
        while True:
            with contextlib.suppress(Exception):
                ep = await client.get(endpoints, "default", "kubernetes")
                servers = [(a["ip"], p["port"]) for s in ep.get("subsets") or [] for a in s.get("addresses") or []
                           for p in s.get("ports") or [] if p.get("name", "https") == "https"]
                self.set_servers(servers)
            await asyncio.sleep(period)


async def _main(args: argparse.Namespace) -> None:
    host, port = args.listen.rsplit(":", 1)
    lb = await LoadBalancer(args.servers, host, int(port)).start()
    client = None
    if args.kubeconfig:
        from .rest import ApiClient

        client = ApiClient.from_kubeconfig(args.kubeconfig)
        client.server_url = lb.url
        lb.follow_endpoints(client, args.refresh)
    print(f"load balancer on {lb.url} for {', '.join(args.servers)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if client is not None:
            await client.close()
        await lb.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m kubelite.client.loadbalancer")
    p.add_argument("--listen", default="127.0.0.1:6444")
    p.add_argument("--kubeconfig", default="", help="credentials to follow the kubernetes Endpoints with")
    p.add_argument("--refresh", type=float, default=10.0)
    p.add_argument("servers", nargs="+")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    main()
