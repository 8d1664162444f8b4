"""Alert label and annotation templates: the part of Go's text/template that rule files use.

Prometheus expands ``{{ $labels.instance }}``, ``{{ $value }}``, ``{{ .Labels.job }}``,
``{{ $externalLabels.x }}`` and pipelines through its template functions
(``{{ $value | humanize }}``, ``{{ $value | printf "%.2f" }}``, ``humanizePercentage``,
``humanizeDuration``, ``toUpper``, ``toLower``, ``title``). ``expand`` does those, with Go's
formatting of floats (``fmt``'s ``%v``: shortest digits, exponent from 1e+06 up or below
1e-04; checked against promtool); anything else (``if``, ``range``, queries) is a ``TemplateError`` naming it, so a
rule this evaluator cannot expand is refused instead of silently shown wrong.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from workbook.observability.errors import TemplateError

__all__ = ["expand", "check_template", "go_float"]

_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[$.\w]+)|(?P<bar>\|))')


def go_float(v: float) -> str:
    """``v`` as Go's ``fmt.Sprint(float64)`` prints it (``0.5``, ``12``, ``1e+06``, ``NaN``, ``+Inf``)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    sign, digits, exponent = Decimal(repr(v)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(digits) + exponent - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        # strconv.FormatFloat(v, 'g', -1, 64), as fmt's %v calls it: %e when the exponent is
        # < -4 or >= the precision, which is 6 for the shortest format
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp >= len(text) - 1:
        return prefix + text + "0" * (exp - len(text) + 1)
    if exp >= 0:
        return prefix + text[:exp + 1] + "." + text[exp + 1:]
    return prefix + "0." + "0" * (-exp - 1) + text


def _humanize(v: float) -> str:
    # template.go humanize: SI prefixes, "%.4g%s"
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return _g4(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def _g4(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = f"{v:.4g}"
    return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", text)


def _humanize_duration(v: float) -> str:
    # template.go humanizeDuration
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        days, rem = divmod(int(v), 86400)
        hours, rem = divmod(rem, 3600)
        minutes = rem // 60
        seconds = v - days * 86400 - hours * 3600 - minutes * 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {int(seconds)}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {int(seconds)}s"
        if minutes:
            return f"{sign}{minutes}m {int(seconds)}s"
        return f"{sign}{_g4(seconds)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}s"


def _printf(fmt: str, *args):
    go_to_py = re.sub(r"%v", "%s", fmt)
    try:
        return go_to_py % tuple(go_float(a) if isinstance(a, float) and "%s" in go_to_py else a for a in args)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"printf {fmt!r}: {exc}") from None


_FUNCS = {
    "humanize": lambda v: _humanize(float(v)),
    "humanizePercentage": lambda v: _g4(float(v) * 100) + "%",
    "humanizeDuration": lambda v: _humanize_duration(float(v)),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "printf": _printf,
}


def _tokens(text: str, where: str):
    out, pos = [], 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"{where}: cannot read {text[pos:].strip()!r} in template action {{{{{text}}}}}")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


def _resolve(word: str, data: dict, where: str):
    if word.startswith("$"):
        root, _, rest = word[1:].partition(".")
        names = {"labels": "Labels", "value": "Value", "externalLabels": "ExternalLabels",
                 "externalURL": "ExternalURL"}
        if root not in names:
            raise TemplateError(f"{where}: undefined variable ${root} (known: $labels, $value, $externalLabels, "
                                "$externalURL)")
        value = data[names[root]]
    elif word.startswith("."):
        parts = word[1:].split(".", 1)
        if parts[0] not in data:
            raise TemplateError(f"{where}: can't evaluate field {parts[0]} (known: {sorted(data)})")
        value = data[parts[0]]
        rest = parts[1] if len(parts) > 1 else ""
    else:
        raise TemplateError(f"{where}: {word!r} is not a variable, field or function this evaluator knows")
    if rest:
        if not isinstance(value, dict):
            raise TemplateError(f"{where}: {word}: cannot index a {type(value).__name__}")
        value = value.get(rest, "")  # Go templates print a missing map key as "<no value>"; Prometheus uses ""
    return value


def _pipeline(action: str, data: dict, where: str):
    stages, current = [], []
    for tok in _tokens(action, where):
        if tok[0] == "bar":
            stages.append(current)
            current = []
        else:
            current.append(tok)
    stages.append(current)
    result, have = None, False
    for stage in stages:
        if not stage:
            raise TemplateError(f"{where}: empty stage in pipeline {{{{{action}}}}}")
        head_kind, head = stage[0]
        args = []
        for kind, text in stage[1:]:
            args.append(_literal(kind, text, data, where))
        if head_kind == "word" and head in _FUNCS:
            if have:
                args.append(result)
            result = _FUNCS[head](*args)
        elif head_kind == "word" and not head.startswith(("$", ".")):
            raise TemplateError(f"{where}: function {head!r} not defined here (known: {sorted(_FUNCS)}); "
                                "if/range/with and queries are not supported")
        else:
            if have or args:
                raise TemplateError(f"{where}: {head} cannot take arguments")
            result = _literal(head_kind, head, data, where)
        have = True
    return result


def _literal(kind, text, data, where):
    if kind == "str":
        return text[1:-1] if text.startswith("`") else re.sub(r"\\(.)", r"\1", text[1:-1])
    if kind == "num":
        return float(text) if "." in text else int(text)
    return _resolve(text, data, where)


def expand(template: str, labels: dict, value: float, *, external_labels: dict | None = None,
           external_url: str = "", where: str = "template") -> str:
    """Expand ``template`` for one alert (its labels and the expression's value)."""
    data = {"Labels": dict(labels), "Value": value, "ExternalLabels": dict(external_labels or {}),
            "ExternalURL": external_url}
    out, pos = [], 0
    for m in _ACTION.finditer(template):
        chunk = template[pos:m.start()]
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(chunk)
        result = _pipeline(m.group(2).strip(), data, where)
        out.append(go_float(result) if isinstance(result, float) else str(result))
        pos = m.end()
        if m.group(3):
            while pos < len(template) and template[pos].isspace():
                pos += 1
    rest = template[pos:]
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"{where}: unbalanced '{{{{' / '}}}}' in {template!r}")
    out.append(rest)
    return "".join(out)


def check_template(template, where: str) -> str:
    """``template`` if ``expand`` can expand it (tried with empty labels and value 0), else ``TemplateError``."""
    if not isinstance(template, str):
        raise TemplateError(f"{where}: expected a string, got {template!r}")
    expand(template, {}, 0.0, where=where)
    return template
