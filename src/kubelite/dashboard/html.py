"""HTML built so that nothing from the cluster can become markup.

Every page is composed with `H(template, *values)`: the template is ours, each value is escaped unless it is
already `Html` (a fragment built the same way). Object names, labels, annotations, log lines and API error
messages are all values, so a label like `<script>` shows as text.
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterable
from urllib.parse import quote


class Html(str):
    """A fragment that is already safe markup."""

    __slots__ = ()


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(_html.escape("" if value is None else str(value), quote=True))


def H(template: str, *args: object, **kwargs: object) -> Html:  # noqa: N802 - reads like a tag
    """`template.format(...)` with every argument escaped unless it is Html."""
    return Html(template.format(*(esc(a) for a in args), **{k: esc(v) for k, v in kwargs.items()}))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(p) for p in parts))


def url(*segments: str, **query: str) -> str:
    """A dashboard path from raw segments, each percent-quoted (escaped again where it is rendered)."""
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    if query:
        path += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items() if v)
    return path


def table(headers: list[str], rows: list[list[object]], empty: str = "Nothing to show",
          row_classes: list[str] | None = None) -> Html:
    if not rows:
        return H('<p class="empty">{}</p>', empty)
    head = join(H("<th>{}</th>", h) for h in headers)
    classes = row_classes or [""] * len(rows)
    body = join(H('<tr class="{}">{}</tr>', cls, join(H("<td>{}</td>", c) for c in row)) if cls
                else H("<tr>{}</tr>", join(H("<td>{}</td>", c) for c in row)) for cls, row in zip(classes, rows,
                                                                                                  strict=True))
    return H('<table class="list"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def labels(mapping: dict | None) -> Html:
    if not mapping:
        return Html("")
    return join(H('<span class="label">{}={}</span>', k, v) for k, v in sorted(mapping.items()))


def link(href: str, text: object) -> Html:
    return H('<a href="{}">{}</a>', href, text)


CSS = """
body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#222;background:#f5f6f8}
header{background:#326ce5;color:#fff;padding:8px 16px;display:flex;align-items:center;gap:16px}
header h1{font-size:18px;margin:0;flex:1}
header form{margin:0}
header .user{font-size:12px}
nav{float:left;width:190px;padding:12px;background:#fff;min-height:calc(100vh - 60px);box-sizing:border-box}
nav h3{font-size:12px;text-transform:uppercase;color:#666;margin:12px 0 4px}
nav a{display:block;padding:2px 0;color:#326ce5;text-decoration:none}
main{margin-left:200px;padding:12px 20px}
table.list{border-collapse:collapse;background:#fff;width:100%}
table.list th,table.list td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
table.kv th{text-align:left;padding-right:12px;vertical-align:top}
.label{display:inline-block;background:#e8eefc;border-radius:3px;padding:0 4px;margin:1px;font-size:12px}
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:8px;margin:8px 0;white-space:pre-wrap}
.flash{background:#e6f4ea;border:1px solid #9ccfab;padding:8px;margin:8px 0;white-space:pre-wrap}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;max-height:70vh}
textarea{width:100%;font-family:monospace}
.login{max-width:520px;margin:60px auto;background:#fff;padding:24px;border-radius:4px}
.actions form{display:inline-block;margin-right:12px}
.empty{color:#666}
tr.warning td{background:#fff4e5}tr.warning td:first-child{border-left:4px solid #e67700}
.warning-badge{color:#a34700;font-weight:bold}
.diff .add{background:#e6ffec;display:block}.diff .del{background:#ffebe9;display:block}
button[disabled]{cursor:not-allowed}.why{color:#a34700;font-size:12px;margin-left:6px}
.langs a,.langs span{color:#fff;margin-right:8px;font-size:12px}.login .lang,.login span{color:#326ce5;margin-right:8px}
.cards{display:flex;gap:16px;flex-wrap:wrap}.card{background:#fff;padding:12px 16px;border-radius:4px;min-width:160px}
.card b{font-size:22px;display:block}
.logctl label{margin-right:10px}
"""
