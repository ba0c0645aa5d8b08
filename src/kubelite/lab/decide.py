"""Deciding an attack from what its commands really printed: every step's result is matched against its
`succeeds_if` and `blocked_if` signals, and the attack's verdict follows from the first step that did not go
the attacker's way.  Nothing is assumed: output matching neither signal is an error, not a block."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SUCCEEDED, BLOCKED, ERROR = "succeeded", "blocked", "error"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Result:
    """What one step did: its exit code (commands), HTTP status (http steps, 0 when no response), output."""

    output: str
    exit: int = 0
    status: int = 0


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """${name} in strings (recursively in lists and dicts); KeyError for an unknown name."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def matches(signal: dict[str, Any], result: Result) -> bool:
    """Whether `result` shows every part of `signal` (an empty signal matches nothing)."""
    if not signal:
        return False
    if "exit" in signal:
        want = _as_list(signal["exit"])
        if "nonzero" in want:
            if result.exit == 0:
                return False
        elif result.exit not in want:
            return False
    if "status" in signal and result.status not in _as_list(signal["status"]):
        return False
    if "contains" in signal and not all(s in result.output for s in _as_list(signal["contains"])):
        return False
    if "not_contains" in signal and any(s in result.output for s in _as_list(signal["not_contains"])):
        return False
    if "regex" in signal and not re.search(signal["regex"], result.output, re.M):
        return False
    return True


def step_outcome(succeeds_if: dict, blocked_if: dict, result: Result) -> str:
    """SUCCEEDED (the step went the attacker's way: continue), BLOCKED (a defense signal), or ERROR.

    A step without `succeeds_if` only gathers something; it goes on unless its `blocked_if` matched."""
    if not succeeds_if:
        return BLOCKED if matches(blocked_if, result) else SUCCEEDED
    if matches(succeeds_if, result):
        return SUCCEEDED
    if matches(blocked_if, result):
        return BLOCKED
    return ERROR


def capture(save: dict[str, str], output: str) -> dict[str, str]:
    """Variables from the output: regex group 1, or the whole match; a missing one is absent."""
    out = {}
    for name, pattern in save.items():
        m = re.search(pattern, output, re.M)
        if m:
            out[name] = (m.group(1) if m.groups() else m.group(0)).strip()
    return out


def verdict(outcomes: list[str]) -> str:
    """The attack's verdict from its steps' outcomes in order (it stops at the first that is not SUCCEEDED)."""
    for outcome in outcomes:
        if outcome != SUCCEEDED:
            return outcome
    return SUCCEEDED if outcomes else ERROR
