"""Table lists answered whole, written page by page as they are read.

kubectl asks for Tables in chunks of 500 (`limit=500`, then `continue`) and its client throttles itself to
client-go's default 5 requests/s (burst 10): for `kubectl get pods -A` on 30,000 pods that alone is 10 s of
waiting, whatever the server does. The API lets a server answer a list whole ("servers may choose not to
support the limit argument and will return all of the available results"), and kubectl then prints the
same lines. So a Table list with a `limit` (and no `continue`) is answered whole: the pages are still read
one by one at the first page's revision, each turned into rows and written at once, so the server never
holds more than a page of objects. JSON and protobuf lists (informers, controllers) keep their pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..api import tables
from ..api.resources import ResourceType
from ..heap import collector_paused
from .responses import TABLE_TYPE

PAGE = 500  # objects read, printed and written at a time

# (limit, continue token) -> (objects as dicts, revision, next continue token or "")
PageReader = Callable[[int, str], Awaitable[tuple[list[dict[str, Any]], int, str]]]


def wanted(request: web.Request) -> bool:
    """A Table list in chunks from the start: the case answered whole."""
    return request.query.get("limit", "0") not in ("", "0") and not request.query.get("continue")


async def whole_table(request: web.Request, rt: ResourceType, include_object: str,
                      read_page: PageReader) -> web.StreamResponse:
    """Errors before the first byte (a bad selector, a compacted revision) are answered as usual by the caller's
    handler; one after it (the revision compacted between two pages) can only end the response early."""
    items, revision, token = await read_page(PAGE, "")
    printer = tables.printer_for(rt)
    with collector_paused():
        head = orjson.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                             "metadata": {"resourceVersion": str(revision)},
                             "columnDefinitions": printer.column_definitions()})
    response = web.StreamResponse(headers={"Content-Type": TABLE_TYPE, "Cache-Control": "no-cache, private"})
    await response.prepare(request)
    await response.write(head[:-1] + b',"rows":[')
    separator = b""
    while True:
        with collector_paused():
            rows = tables.table_rows(rt, items, include_object=include_object, printer=printer)
            chunk = orjson.dumps(rows)[1:-1]
        del items, rows
        if chunk:
            await response.write(separator + chunk)
            separator = b","
        if not token:
            break
        items, _, token = await read_page(PAGE, token)
    await response.write(b"]}\n")
    await response.write_eof()
    return response
