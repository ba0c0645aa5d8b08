"""Name and value format checks, and field errors rendered the way apimachinery renders them.

The `is_*` functions return a list of problem descriptions (empty when the value is fine), worded
exactly as `k8s.io/apimachinery/pkg/util/validation` words them, because kubectl users see them verbatim.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# --- Go value rendering (apimachinery v1.33 field.Error.ErrorBody) -------------------------------------


def go_quote(s: str) -> str:
    """Go's %q / strconv.Quote: printable runes kept, everything else escaped."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x80 or _go_printable(ch):
            out.append(ch)
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_printable(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] not in "CZ" or ch == " "


def go_value(v: Any) -> str:
    """A bad value as v1.33 prints it: %v for numbers/bools, %q for strings, Go's %#v otherwise."""
    if isinstance(v, GoLiteral):
        return v.text
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
        return "map[string]string{" + ", ".join(f"{go_quote(k)}:{go_quote(v[k])}" for k in sorted(v)) + "}"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[]string{" + ", ".join(go_quote(x) for x in v) + "}"
    return repr(v)


class GoLiteral:
    """A value whose Go rendering was worked out by the caller (structs, typed slices)."""

    def __init__(self, text: str) -> None:
        self.text = text


def label_selector_literal(sel: Any) -> GoLiteral:
    """%#v of a metav1.LabelSelector, as seen in `field is immutable` messages."""
    sel = sel or {}
    labels = sel.get("matchLabels")
    ml = "map[string]string(nil)" if labels is None else go_value(labels)
    exprs = sel.get("matchExpressions")
    if not exprs:
        me = "[]v1.LabelSelectorRequirement(nil)"
    else:
        items = []
        for e in exprs:
            vals = e.get("values")
            vs = "[]string(nil)" if vals is None else go_value(vals)
            items.append(f'v1.LabelSelectorRequirement{{Key:{go_quote(e.get("key", ""))}, '
                         f'Operator:{go_quote(e.get("operator", ""))}, Values:{vs}}}')
        me = "[]v1.LabelSelectorRequirement{" + ", ".join(items) + "}"
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}")


# --- field errors ---------------------------------------------------------------------------------------


def _cause(kind: str, path: str, body: str) -> dict[str, str]:
    return {"type": kind, "field": path, "message": body}


def invalid(path: str, value: Any, detail: str) -> dict[str, str]:
    body = f"Invalid value: {go_value(value)}"
    return _cause("FieldValueInvalid", path, f"{body}: {detail}" if detail else body)


def required(path: str, detail: str = "") -> dict[str, str]:
    return _cause("FieldValueRequired", path, f"Required value: {detail}" if detail else "Required value")


def forbidden(path: str, detail: str = "") -> dict[str, str]:
    return _cause("FieldValueForbidden", path, f"Forbidden: {detail}" if detail else "Forbidden")


def duplicate(path: str, value: Any) -> dict[str, str]:
    return _cause("FieldValueDuplicate", path, f"Duplicate value: {go_value(value)}")


def not_found(path: str, value: Any) -> dict[str, str]:
    return _cause("FieldValueNotFound", path, f"Not found: {go_value(value)}")


def not_supported(path: str, value: Any, allowed: list[str] | tuple[str, ...]) -> dict[str, str]:
    body = f"Unsupported value: {go_value(value)}"
    if allowed:
        body += ": supported values: " + ", ".join(go_quote(a) for a in allowed)
    return _cause("FieldValueNotSupported", path, body)


def too_long(path: str, max_bytes: int) -> dict[str, str]:
    unit = "byte" if max_bytes == 1 else "bytes"
    return _cause("FieldValueTooLong", path, f"Too long: may not be more than {max_bytes} {unit}")


def too_many(path: str, actual: int, most: int) -> dict[str, str]:
    unit = "item" if most == 1 else "items"
    return _cause("FieldValueTooMany", path, f"Too many: {actual}: must have at most {most} {unit}")


def immutable(path: str, value: Any) -> dict[str, str]:
    return invalid(path, value, "field is immutable")


# --- formats (apimachinery pkg/util/validation) ---------------------------------------------------------


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # upstream puts a comma after every example and joins them with " or ", hence the double space
    ex = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {ex}regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def empty_error() -> str:
    return "must be non-empty"


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

_DNS1123_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63


def _full(rx: re.Pattern[str], value: str) -> bool:
    # Python's $ also matches before a trailing newline; Go's regexp does not
    return rx.match(value) is not None and not value.endswith("\n")


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_DNS1123_LABEL, value):
        if _full(_DNS1123_SUBDOMAIN, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character", DNS1123_LABEL_FMT,
                "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_DNS1123_SUBDOMAIN, value):
        errs.append(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character", DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_DNS1035_LABEL, value):
        errs.append(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


_QUALIFIED_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [regex_error("a qualified name " + _QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                            "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _full(_QUALIFIED_NAME, name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE, value):
        errs.append(regex_error("a valid label must be an empty string or consist of alphanumeric characters, "
                                "'-', '_' or '.', and must start and end with an alphanumeric character",
                                LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_CONFIG_KEY, value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                                CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    if 1 <= port <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_PORT_NAME_LETTER = re.compile(r"[a-z]")


def is_valid_port_name(name: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335)."""
    errs = []
    if len(name) > 15:
        errs.append(max_len_error(15))
    if not _full(_PORT_NAME_CHARS, name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_env_var_name(name: str) -> list[str]:
    """RelaxedEnvironmentVariableValidation (beta, on by default in v1.33): printable ASCII except '='."""
    if all(" " <= c <= "~" and c != "=" for c in name):
        return []
    return ["a valid environment variable name must consist only of printable ASCII characters other than '='"]


def is_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """Names that only have to be usable as one URL path segment (RBAC kinds, among others)."""
    errs = []
    if not prefix and name in (".", ".."):
        errs.append(f"may not be '{name}'")
    if "/" in name:
        errs.append("may not contain '/'")
    if "%" in name:
        errs.append("may not contain '%'")
    return errs


def mask_trailing_dash(name: str) -> str:
    """generateName is validated as a prefix: a trailing '-' is allowed because a suffix follows."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name
