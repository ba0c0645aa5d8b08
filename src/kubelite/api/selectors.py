"""Label and field selectors with upstream's syntax, validation, matching and error messages.

Label selectors follow apimachinery `pkg/labels` (lexer, parser, `NewRequirement` validation, `String()`
normal form); field selectors follow `pkg/fields` plus the per-kind field label conversions and selectable
fields of the kube-apiserver registries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubelite.api.errors import ApiError, bad_request
from kubelite.api.resources import BUILTIN, ResourceType

# ---------------------------------------------------------------------------------------------------
# Validation of label keys and values (apimachinery util/validation), with upstream's wording.

_QNAME_CHAR = "[A-Za-z0-9]"
_QNAME_EXT = "[-A-Za-z0-9_.]"
QUALIFIED_NAME_FMT = f"({_QNAME_CHAR}{_QNAME_EXT}*)?{_QNAME_CHAR}"
LABEL_VALUE_FMT = f"({QUALIFIED_NAME_FMT})?"
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"

_QNAME_RE = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")

_QNAME_ERR = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character")
_LABEL_VALUE_ERR = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_ERR = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                          "'.', and must start and end with an alphanumeric character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {parts}regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(_max_len(253))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Errors for a label key / qualified name (`[prefix/]name`), as upstream's `IsQualifiedName`."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name " + _regex_error(_QNAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not _QNAME_RE.match(name):
        errs.append("name part " + _regex_error(_QNAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_ERR, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def go_quote(s: str) -> str:
    """Go's `%q` for a string: double-quoted with Go escapes."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _field_invalid(path: str, value: Any, detail: str) -> str:
    """A `field.Invalid(...)` error's text."""
    if isinstance(value, str):
        shown = go_quote(value)
    elif isinstance(value, list | tuple):
        shown = "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    else:
        shown = str(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


# ---------------------------------------------------------------------------------------------------
# Label selectors

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_ALL_OPERATORS = (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST)


class SelectorError(ValueError):
    """A selector that does not parse; `str()` is upstream's message."""


def _int64(s: str) -> int | None:
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    v = int(s)
    return v if -(2**63) <= v < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _int64(labels[self.key]), _int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        prefix = "!" if op == DOES_NOT_EXIST else ""
        if op in (EXISTS, DOES_NOT_EXIST):
            return prefix + self.key
        sym = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", IN: " in ", NOT_IN: " notin ",
               GREATER_THAN: ">", LESS_THAN: "<"}[op]
        vals = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            vals = f"({vals})"
        return f"{self.key}{sym}{vals}"


def new_requirement(key: str, op: str, values: Iterable[str], path: str = "") -> Requirement:
    """Upstream's `labels.NewRequirement`: validates key, operator, value count and values."""
    vals = list(values)
    errs: list[str] = []
    base = path
    key_path = f"{base}.key" if base else "key"
    values_path = f"{base}.values" if base else "values"
    if key_errs := is_qualified_name(key):
        errs.append(_field_invalid(key_path, key, "; ".join(key_errs)))
    if op in (IN, NOT_IN):
        if not vals:
            errs.append(_field_invalid(values_path, vals, "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(_field_invalid(values_path, vals, "exact-match compatibility requires one single value"))
    elif op in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(_field_invalid(values_path, vals, "values set must be empty for exists and does not exist"))
    elif op in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(_field_invalid(values_path, vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if _int64(v) is None:
                errs.append(_field_invalid(f"{values_path}[{i}]", v,
                                           "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        supported = ", ".join(go_quote(o) for o in _ALL_OPERATORS)
        errs.append(f"{base + '.' if base else ''}operator: Unsupported value: {go_quote(op)}: "
                    f"supported values: {supported}")
    for i, v in enumerate(vals):
        if v_errs := is_valid_label_value(v):
            errs.append(_field_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(v_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return Requirement(key, op, tuple(vals))


class LabelSelector:
    """An AND of requirements; `nothing=True` is the selector that matches no object (a nil LabelSelector)."""

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self.nothing = nothing

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r}{', nothing' if self.nothing else ''})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelSelector) and self.requirements == other.requirements
                and self.nothing == other.nothing)

    def __hash__(self) -> int:
        return hash((self.requirements, self.nothing))


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)

# Lexer tokens
_ERR, _EOS, _CPAR, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPAR = range(14)
_STRING_TO_TOKEN = {")": _CPAR, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT, "in": _IN, "<": _LT,
                    "!=": _NEQ, "notin": _NOTIN, "(": _OPAR}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_EOS, ""))
            return items
        if s[pos] in _SPECIAL:
            buf, last, last_end = "", None, pos
            while pos < n and s[pos] in _SPECIAL:
                buf += s[pos]
                if buf in _STRING_TO_TOKEN:
                    last, last_end = (_STRING_TO_TOKEN[buf], buf), pos + 1
                elif last is not None:
                    break
                pos += 1
            if last is None:
                items.append((_ERR, f"error expected: keyword found '{buf}'"))
            else:
                items.append(last)
                pos = last_end
            continue
        start = pos
        while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
            pos += 1
        word = s[start:pos]
        tok = _STRING_TO_TOKEN.get(word)
        items.append((tok, word) if tok is not None else (_ID, word))


class _Parser:
    KEY_AND_OPERATOR, VALUES = 0, 1

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def _tok(self, item: tuple[int, str], ctx: int) -> tuple[int, str]:
        tok, lit = item
        if ctx == self.VALUES and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def lookahead(self, ctx: int) -> tuple[int, str]:
        return self._tok(self.items[self.pos], ctx)

    def consume(self, ctx: int) -> tuple[int, str]:
        self.pos += 1
        return self._tok(self.items[self.pos - 1], ctx)

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(self.VALUES)
            if tok in (_ID, _NOT):
                try:
                    reqs.append(self.parse_requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume(self.VALUES)
                if t == _EOS:
                    return reqs
                if t == _COMMA:
                    t2, l2 = self.lookahead(self.VALUES)
                    if t2 not in (_ID, _NOT):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _EOS:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        key, op = self.parse_key_and_infer_operator()
        if op in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, op, [])
        op = self.parse_operator()
        values = self.parse_values() if op in (IN, NOT_IN) else self.parse_exact_value()
        return new_requirement(key, op, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str]:
        op = ""
        tok, lit = self.consume(self.VALUES)
        if tok == _NOT:
            op = DOES_NOT_EXIST
            tok, lit = self.consume(self.VALUES)
        if tok != _ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        if errs := is_qualified_name(lit):
            raise SelectorError(_field_invalid("<nil>", lit, "; ".join(errs)))
        t, _ = self.lookahead(self.VALUES)
        if t in (_EOS, _COMMA) and op != DOES_NOT_EXIST:
            op = EXISTS
        return lit, op

    def parse_operator(self) -> str:
        tok, lit = self.consume(self.KEY_AND_OPERATOR)
        ops = {_IN: IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN, _NOTIN: NOT_IN,
               _NEQ: NOT_EQUALS}
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def parse_values(self) -> set[str]:
        tok, lit = self.consume(self.VALUES)
        if tok != _OPAR:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(self.VALUES)
        if tok in (_ID, _COMMA):
            values = self.parse_identifiers_list()
            if self.consume(self.VALUES)[0] != _CPAR:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CPAR:
            self.consume(self.VALUES)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(self.VALUES)
            if tok == _ID:
                values.add(lit)
                t2, l2 = self.lookahead(self.VALUES)
                if t2 == _COMMA:
                    continue
                if t2 == _CPAR:
                    return values
                raise SelectorError(f"found '{l2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not values:
                    values.add("")
                t2, _ = self.lookahead(self.VALUES)
                if t2 == _CPAR:
                    values.add("")
                    return values
                if t2 == _COMMA:
                    self.consume(self.VALUES)
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead(self.VALUES)
        if tok in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume(self.VALUES)
        if tok == _ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def try_parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector string; raises SelectorError with upstream's message."""
    if text is None or text == "":
        return EVERYTHING
    return LabelSelector(_Parser(text).parse())


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `labelSelector` query parameter; a bad one is a 400 BadRequest as the apiserver answers it."""
    try:
        return try_parse_label_selector(text)
    except SelectorError as e:
        raise bad_request(str(e)) from None


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def try_label_selector_from_dict(selector: dict[str, Any] | None) -> LabelSelector:
    """`metav1.LabelSelectorAsSelector`: None matches nothing, `{}` matches everything."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return EVERYTHING
    reqs = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in exprs:
        op = expr.get("operator", "")
        if op not in _EXPRESSION_OPERATORS:
            raise SelectorError(f"{go_quote(op)} is not a valid label selector operator")
        reqs.append(new_requirement(expr.get("key", ""), _EXPRESSION_OPERATORS[op], list(expr.get("values") or [])))
    return LabelSelector(reqs)


def label_selector_from_dict(selector: dict[str, Any] | None) -> LabelSelector:
    try:
        return try_label_selector_from_dict(selector)
    except SelectorError as e:
        raise bad_request(str(e)) from None


def label_selector_to_string(selector: dict[str, Any] | None) -> str:
    """The `a=b,c in (d)` form of a `metav1.LabelSelector` (Scale `status.selector`); "" for none or empty."""
    try:
        return str(try_label_selector_from_dict(selector))
    except SelectorError:
        return ""


def format_label_selector(selector: dict[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector`: as label_selector_to_string, `<none>` when empty, `<error>` if invalid."""
    try:
        text = str(try_label_selector_from_dict(selector))
    except SelectorError:
        return "<error>"
    return text or "<none>"


def format_labels(labels: dict[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---------------------------------------------------------------------------------------------------
# Field selectors

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, fields: dict[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have != self.value if self.operator == NOT_EQUALS else have == self.value

    def __str__(self) -> str:
        op = "!=" if self.operator == NOT_EQUALS else "="
        return f"{self.field}{op}{escape_field_value(self.value)}"


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c in "\\,=":
                out.append(c)
            else:
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, i.e. its code point
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    if not text:
        return []
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(text):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_raw_field_selector(text: str | None) -> list[FieldRequirement]:
    """`fields.ParseSelector` without the per-kind label check; raises SelectorError."""
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_terms(text or "")):
        if part == "":
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        reqs.append(FieldRequirement(lhs, op, unescape_field_value(rhs)))
    return reqs


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FieldGetter = Callable[[dict[str, Any]], str]


def _path(*path: str) -> FieldGetter:
    return lambda obj: _s(_get(obj, *path))


def _pod_ip(obj: dict[str, Any]) -> str:
    ips = _get(obj, "status", "podIPs") or []
    if ips and isinstance(ips[0], dict):
        return _s(ips[0].get("ip"))
    return _s(_get(obj, "status", "podIP"))


def _event_source(obj: dict[str, Any]) -> str:
    return _s(_get(obj, "source", "component")) or _s(obj.get("reportingComponent"))


def _unset(obj: dict[str, Any]) -> str:
    # accepted by the label conversion but absent from the registry's selectable field set
    return ""


_META: dict[str, FieldGetter] = {"metadata.name": _path("metadata", "name"),
                                 "metadata.namespace": _path("metadata", "namespace")}
_NAME_ONLY: dict[str, FieldGetter] = {"metadata.name": _path("metadata", "name")}


@dataclass(frozen=True)
class _FieldRules:
    fields: dict[str, FieldGetter]
    reject: Callable[[str], str]
    aliases: tuple[tuple[str, str], ...] = ()  # accepted old label -> canonical label


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _default_reject(label: str) -> str:
    return f"{go_quote(label)} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""


_EVENT_FIELDS: dict[str, FieldGetter] = {
    **_META,
    "involvedObject.kind": _path("involvedObject", "kind"),
    "involvedObject.namespace": _path("involvedObject", "namespace"),
    "involvedObject.name": _path("involvedObject", "name"),
    "involvedObject.uid": _path("involvedObject", "uid"),
    "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
    "reason": _path("reason"),
    "reportingComponent": _path("reportingComponent"),
    "source": _event_source,
    "type": _path("type"),
}

# events.k8s.io/v1 labels, read from that version's own field names
_EVENTS_V1_FIELDS: dict[str, FieldGetter] = {
    **_META,
    **{f"regarding.{f}": _path("regarding", f)
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": _path("reason"),
    "reportingController": _path("reportingController"),
    "type": _path("type"),
}

_RULES: dict[tuple[str, str], _FieldRules] = {
    ("", "Pod"): _FieldRules({
        **_META,
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: "true" if _get(o, "spec", "hostNetwork") else "false",
        "status.phase": _path("status", "phase"),
        "status.podIP": _pod_ip,
        "status.podIPs": _unset,
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    }, _not_supported, (("spec.host", "spec.nodeName"),)),
    ("", "Node"): _FieldRules({
        **_NAME_ONLY,
        "spec.unschedulable": lambda o: "true" if _get(o, "spec", "unschedulable") else "false",
    }, _not_supported),
    ("", "ReplicationController"): _FieldRules({
        **_META, "status.replicas": lambda o: _s(_get(o, "status", "replicas") or 0),
    }, _not_supported),
    ("", "Event"): _FieldRules(_EVENT_FIELDS, _not_supported),
    ("events.k8s.io", "Event"): _FieldRules(_EVENTS_V1_FIELDS, _not_supported),
    ("", "Namespace"): _FieldRules({**_NAME_ONLY, "status.phase": _path("status", "phase")}, _not_supported),
    ("", "Secret"): _FieldRules({**_META, "type": _path("type")}, _not_supported),
    ("", "Service"): _FieldRules({
        **_META, "spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type"),
    }, _not_supported),
    ("apps", "ReplicaSet"): _FieldRules({
        **_META, "status.replicas": lambda o: _s(_get(o, "status", "replicas") or 0),
    }, _not_supported),
    ("batch", "Job"): _FieldRules({
        **_META, "status.successful": lambda o: _s(_get(o, "status", "succeeded") or 0),
    }, lambda label: f"field label {go_quote(label)} not supported for Job"),
    ("certificates.k8s.io", "CertificateSigningRequest"): _FieldRules({
        **_NAME_ONLY, "spec.signerName": _path("spec", "signerName"),
    }, _not_supported),
}

_BUILTIN_KINDS = {(rt.group, rt.kind) for rt in BUILTIN}


def _jsonpath_getter(path: str) -> FieldGetter:
    parts = [p for p in path.lstrip(".").split(".") if p]
    return lambda obj: _s(_get(obj, *parts))


def _rules_for(rt: ResourceType) -> _FieldRules:
    rules = _RULES.get((rt.group, rt.kind))
    if rules is not None:
        return rules
    if (rt.group, rt.kind) in _BUILTIN_KINDS or rt.extra.get("builtin"):
        return _FieldRules(_META, _default_reject)
    # a custom resource: name, namespace when namespaced, and the CRD's selectableFields
    fields: dict[str, FieldGetter] = dict(_META if rt.namespaced else _NAME_ONLY)
    for sf in rt.extra.get("selectableFields") or ():
        json_path = sf.get("jsonPath", "") if isinstance(sf, dict) else str(sf)
        fields[json_path.lstrip(".")] = _jsonpath_getter(json_path)
    return _FieldRules(fields, _not_supported)


def selectable_fields(rt: ResourceType, obj: dict[str, Any]) -> dict[str, str]:
    """The field set a kind exposes to field selectors (upstream's `ToSelectableFields`)."""
    return {label: get(obj) for label, get in _rules_for(rt).fields.items()}


class FieldSelector:
    """An AND of `field=value` / `field!=value` terms, validated against what the kind supports."""

    def __init__(self, requirements: Iterable[FieldRequirement] = (), rt: ResourceType | None = None) -> None:
        self._reqs = tuple(requirements)
        self._getters = _rules_for(rt).fields if rt is not None else {}

    def matches(self, obj: dict[str, Any]) -> bool:
        for r in self._reqs:
            get = self._getters.get(r.field)
            have = get(obj) if get else ""
            if (have != r.value) if r.operator != NOT_EQUALS else (have == r.value):
                return False
        return True

    def empty(self) -> bool:
        return not self._reqs

    def requirements(self) -> list[FieldRequirement]:
        return list(self._reqs)

    def requires_exact_match(self, field: str) -> str | None:
        for r in self._reqs:
            if r.field == field and r.operator != NOT_EQUALS:
                return r.value
        return None

    @property
    def name(self) -> str | None:
        """The exact `metadata.name` asked for, to narrow a storage scan to one key."""
        return self.requires_exact_match("metadata.name")

    @property
    def namespace(self) -> str | None:
        return self.requires_exact_match("metadata.namespace")

    def __str__(self) -> str:
        return ",".join(str(r) for r in self._reqs)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def try_parse_field_selector(text: str | None, rt: ResourceType) -> FieldSelector:
    rules = _rules_for(rt)
    aliases = dict(rules.aliases)
    out = []
    for r in parse_raw_field_selector(text):
        field = aliases.get(r.field, r.field)
        if field not in rules.fields:
            raise SelectorError(rules.reject(r.field))
        out.append(FieldRequirement(field, r.operator, r.value))
    return FieldSelector(out, rt)


def parse_field_selector(text: str | None, rt: ResourceType) -> FieldSelector:
    """Parse a `fieldSelector` query parameter for a kind; bad syntax or an unsupported field is a 400."""
    try:
        return try_parse_field_selector(text, rt)
    except SelectorError as e:
        raise bad_request(str(e)) from None


__all__ = [
    "ApiError", "FieldRequirement", "FieldSelector", "LabelSelector", "Requirement", "SelectorError",
    "format_label_selector", "format_labels", "label_selector_from_dict", "label_selector_to_string",
    "new_requirement", "parse_field_selector", "parse_label_selector", "selectable_fields",
]
