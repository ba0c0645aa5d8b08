"""Reading small YAML files (kubeconfig, registries.yaml), optionally parsed by a short-lived child process.

PyYAML costs a long-lived process ~1 MiB resident for good, and the node agent reads its two or three YAML
files once, at start-up (issue 5: its idle memory).  `parse_in_child(paths)` parses them in a child Python and
keeps the results; `load(path)` returns a copy of such a result while the file is unchanged (same size and
mtime) and otherwise parses the file itself, raising what PyYAML raises.  A document the child cannot pass
back exactly as JSON (dates, binary, non-string keys, …) or cannot read or parse is left to `load`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

_CHILD = """
import json, sys, yaml
out = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
        if json.loads(json.dumps(doc)) == doc:
            out[path] = doc
    except Exception:
        pass
print(json.dumps(out))
"""

_parsed: dict[str, tuple[tuple[int, int], Any]] = {}  # abspath -> ((mtime_ns, size), document)


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def parse_in_child(paths: list[str], timeout: float = 30.0) -> None:
    """Parse `paths` in a child process; no-op where PyYAML is loaded here anyway."""
    if "yaml" in sys.modules:
        return
    wanted = {os.path.abspath(p): _stamp(p) for p in paths if p}
    wanted = {p: s for p, s in wanted.items() if s is not None}
    if not wanted:
        return
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, *wanted], capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
        docs = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return  # `load` parses in-process
    for path, doc in docs.items():
        if _stamp(path) == wanted.get(path):
            _parsed[path] = (wanted[path], doc)


def load(path: str) -> Any:
    """`yaml.safe_load` of the file at `path`."""
    hit = _parsed.get(os.path.abspath(path))
    if hit is not None and hit[0] == _stamp(path):
        return copy.deepcopy(hit[1])
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)
