"""A small PromQL: the functions the chapter's figures use, and an evaluator for alert rules.

The functions follow Prometheus 2.42 (the version Debian ships) line by line:

* ``extrapolated_rate`` is ``promql/functions.go: extrapolatedRate`` (v2.42.0): the
  increase between the first and last sample in ``[t - range, t]`` (both ends included in
  2.x), corrected for counter resets (a drop adds the value before it), then extrapolated
  to the window's edges when the first/last sample is within 1.1 average sample intervals
  of the edge (otherwise by half an interval), and never to before the counter's
  extrapolated zero. ``rate`` divides by the range; ``increase`` does not; ``delta`` is the
  gauge version (no reset correction, no zero clamp). Fewer than two samples: no result.
* ``histogram_quantile`` is ``promql/quantile.go: bucketQuantile``: buckets sorted by
  ``le``, equal bounds merged, counts forced monotonic, the rank ``q * count`` located and
  interpolated linearly inside its bucket (from 0 for the first bucket, unless its bound is
  <= 0); a rank in the ``+Inf`` bucket returns the largest finite bound; no ``+Inf`` bucket:
  NaN.
* ``*_over_time`` aggregate the samples in ``[t - range, t]``.

``Engine(store).query(expr, t)`` evaluates a PromQL subset at time ``t`` (seconds):
selectors with matchers (``=``, ``!=``, ``=~``, ``!~``), range selectors, ``offset``,
the functions above and ``abs``, ``clamp_min``, ``clamp_max``, ``vector``, ``time``;
aggregations ``sum``, ``avg``, ``min``, ``max``, ``count`` with ``by``/``without``;
arithmetic ``+ - * / %``, comparisons with and without ``bool``, and ``and``/``or``/``unless``,
with one-to-one vector matching (``on``/``ignoring``). An instant selector takes the newest
sample within the 5-minute lookback. What it does not support it refuses with a
``PromQLError`` naming the position, as it refuses malformed expressions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from workbook.observability.errors import PromQLError
from workbook.observability.series import (LABEL_NAME_RE, Labels, SeriesStore, check_label_name, parse_duration)

__all__ = ["Engine", "extrapolated_rate", "rate", "increase", "delta", "histogram_quantile", "over_time",
           "parse_promql", "check_expression", "LOOKBACK_MS"]

LOOKBACK_MS = 300_000


# ----------------------------------------------------------------------------- functions

def extrapolated_rate(times_ms, values, range_start_ms: int, range_end_ms: int, *, is_counter: bool,
                      is_rate: bool) -> float | None:
    """Prometheus 2.42's ``extrapolatedRate`` on the samples of one window (see module doc)."""
    if len(times_ms) < 2:
        return None
    result = values[-1] - values[0]
    if is_counter:
        prev = values[0]
        for v in values[1:]:
            if v < prev:
                result += prev
            prev = v
    duration_to_start = (times_ms[0] - range_start_ms) / 1000
    duration_to_end = (range_end_ms - times_ms[-1]) / 1000
    sampled = (times_ms[-1] - times_ms[0]) / 1000
    average = sampled / (len(times_ms) - 1)
    if is_counter and result > 0 and values[0] >= 0:
        duration_to_zero = sampled * (values[0] / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average * 1.1
    interval = sampled
    interval += duration_to_start if duration_to_start < threshold else average / 2
    interval += duration_to_end if duration_to_end < threshold else average / 2
    factor = interval / sampled
    if is_rate:
        factor /= (range_end_ms - range_start_ms) / 1000
    return result * factor


def _window(times_ms, values, t: float, range_s: float):
    end = round(t * 1000)
    start = end - round(range_s * 1000)
    pairs = [(tm, v) for tm, v in zip(times_ms, values) if start <= tm <= end]
    return [p[0] for p in pairs], [p[1] for p in pairs], start, end


def rate(times_ms, values, t: float, range_s: float) -> float | None:
    """Per-second ``rate(x[range])`` at ``t`` seconds of a counter's samples (ms timestamps)."""
    tm, vs, start, end = _window(times_ms, values, t, range_s)
    return extrapolated_rate(tm, vs, start, end, is_counter=True, is_rate=True)


def increase(times_ms, values, t: float, range_s: float) -> float | None:
    """``increase(x[range])`` at ``t``: ``rate * range``, with the same extrapolation."""
    tm, vs, start, end = _window(times_ms, values, t, range_s)
    return extrapolated_rate(tm, vs, start, end, is_counter=True, is_rate=False)


def delta(times_ms, values, t: float, range_s: float) -> float | None:
    """``delta(x[range])`` of a gauge at ``t``."""
    tm, vs, start, end = _window(times_ms, values, t, range_s)
    return extrapolated_rate(tm, vs, start, end, is_counter=False, is_rate=False)


def histogram_quantile(q: float, buckets) -> float:
    """Prometheus 2.42's ``bucketQuantile`` over ``[(le, cumulative_count), ...]`` (see module doc)."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bs = sorted((float(le), float(c)) for le, c in buckets)
    if not bs or not math.isinf(bs[-1][0]):
        return math.nan
    merged = [list(bs[0])]
    for le, c in bs[1:]:
        if le == merged[-1][0]:
            merged[-1][1] += c
        else:
            merged.append([le, c])
    top = merged[0][1]
    for b in merged[1:]:
        top = b[1] = max(top, b[1])
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def _quantile_over(q, vs):
    # promql/quantile.go: quantile (phi-quantile with linear interpolation between ranks)
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    s = sorted(vs)
    rank = q * (len(s) - 1)
    lo = max(0, math.floor(rank))
    hi = min(len(s) - 1, lo + 1)
    w = rank - math.floor(rank)
    return s[lo] * (1 - w) + s[hi] * w


_OVER_TIME = {
    "avg_over_time": lambda vs: _mean(vs),
    "sum_over_time": lambda vs: math.fsum(vs),
    "min_over_time": min,
    "max_over_time": max,
    "count_over_time": lambda vs: float(len(vs)),
    "last_over_time": lambda vs: vs[-1],
}


def _mean(vs):
    # promql/functions.go funcAvgOverTime (2.42): incremental mean, mean += v/n - mean/n
    mean, count = 0.0, 0
    for v in vs:
        count += 1
        mean += v / count - mean / count
    return mean


def over_time(function: str, times_ms, values, t: float, range_s: float) -> float | None:
    """``avg_over_time`` / ``sum_`` / ``min_`` / ``max_`` / ``count_`` / ``last_over_time`` at ``t``."""
    if function not in _OVER_TIME:
        raise ValueError(f"function {function!r}: expected one of {sorted(_OVER_TIME)}")
    tm, vs, _, _ = _window(times_ms, values, t, range_s)
    return _OVER_TIME[function](vs) if vs else None


# ----------------------------------------------------------------------------- parser

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0x[0-9a-fA-F]+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^(){}\[\],=<>])
""", re.VERBOSE)

_AGGREGATIONS = {"sum", "avg", "min", "max", "count"}
_RANGE_FUNCTIONS = {"rate", "increase", "delta", *_OVER_TIME}
_FUNCTIONS = _RANGE_FUNCTIONS | {"histogram_quantile", "abs", "clamp_min", "clamp_max", "vector", "time",
                                 "quantile_over_time"}
_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
_UNSUPPORTED = {"topk", "bottomk", "quantile", "stddev", "stdvar", "count_values", "group", "group_left",
                "group_right"}


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Selector:
    name: str | None
    matchers: tuple
    range_ms: int | None = None
    offset_ms: int = 0


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Aggregate:
    op: str
    expr: object
    grouping: tuple
    without: bool


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: object
    rhs: object
    bool_mode: bool = False
    on: tuple | None = None
    ignoring: tuple = ()


@dataclass(frozen=True)
class Neg:
    expr: object


class _Parser:
    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise PromQLError(str(text), 0, "empty expression: expected a PromQL expression")
        self.text = text
        self.tokens = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise PromQLError(text, pos, f"unexpected character {text[pos]!r}")
            if m.lastgroup != "ws":
                self.tokens.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.tokens.append(("eof", "", len(text)))
        self.i = 0

    def peek(self, k=0):
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message, tok=None):
        tok = tok or self.peek()
        return PromQLError(self.text, tok[2], message)

    def expect(self, value):
        tok = self.next()
        if tok[1] != value:
            raise self.error(f"expected {value!r}, got {tok[1] or 'end of input'!r}", tok)
        return tok

    def parse(self):
        node = self.parse_or()
        if self.peek()[0] != "eof":
            raise self.error(f"unexpected {self.peek()[1]!r} after a complete expression")
        return node

    def _binary(self, ops, sub):
        node = sub()
        while self.peek()[1] in ops and self.peek()[0] in ("op", "ident"):
            op = self.next()[1]
            bool_mode = False
            if self.peek()[1] == "bool":
                if op not in _COMPARISONS:
                    raise self.error("'bool' is only allowed after a comparison operator")
                self.next()
                bool_mode = True
            on, ignoring = None, ()
            if self.peek()[1] in ("on", "ignoring"):
                kind = self.next()[1]
                labels = self.label_list()
                if kind == "on":
                    on = labels
                else:
                    ignoring = labels
            if self.peek()[1] in ("group_left", "group_right"):
                raise self.error(f"{self.peek()[1]} (many-to-one matching) is not supported by this evaluator")
            op_tok = self.tokens[self.i - 1]
            rhs = sub()
            if op in _COMPARISONS and not bool_mode and _is_scalar(node) and _is_scalar(rhs):
                raise self.error("comparisons between scalars must use the bool modifier", op_tok)
            if op in ("and", "or", "unless") and (_is_scalar(node) or _is_scalar(rhs)):
                raise self.error(f"set operator {op} not allowed in binary scalar expression", op_tok)
            node = Binary(op, node, rhs, bool_mode, on, ignoring)
        return node

    def parse_or(self):
        return self._binary({"or"}, self.parse_and)

    def parse_and(self):
        return self._binary({"and", "unless"}, self.parse_cmp)

    def parse_cmp(self):
        return self._binary(_COMPARISONS, self.parse_add)

    def parse_add(self):
        return self._binary({"+", "-"}, self.parse_mul)

    def parse_mul(self):
        return self._binary({"*", "/", "%"}, self.parse_unary)

    def parse_unary(self):
        if self.peek()[1] == "-":
            self.next()
            return Neg(self.parse_unary())
        if self.peek()[1] == "+":
            self.next()
            return self.parse_unary()
        if self.peek()[1] == "^":
            raise self.error("'^' is not supported by this evaluator")
        return self.parse_postfix()

    def parse_postfix(self):
        node = self.parse_primary()
        if self.peek()[1] == "[":
            bracket = self.next()
            if not isinstance(node, Selector) or node.range_ms is not None:
                raise self.error("a range [..] can only follow a series selector (subqueries are not supported)",
                                 bracket)
            tok = self.next()
            if tok[0] != "duration":
                raise self.error(f"expected a duration such as 5m inside [...], got {tok[1]!r}", tok)
            if self.peek()[1] == ":":
                raise self.error("subqueries are not supported by this evaluator")
            self.expect("]")
            node = Selector(node.name, node.matchers, parse_duration(tok[1], field="range"), node.offset_ms)
        if self.peek()[1] == "offset":
            self.next()
            tok = self.next()
            if tok[0] != "duration" or not isinstance(node, Selector):
                raise self.error("offset needs a selector before it and a duration after it", tok)
            node = Selector(node.name, node.matchers, node.range_ms, parse_duration(tok[1], field="offset"))
        return node

    def label_list(self):
        self.expect("(")
        labels = []
        while self.peek()[1] != ")":
            tok = self.next()
            if tok[0] != "ident" or not LABEL_NAME_RE.match(tok[1]):
                raise self.error(f"expected a label name, got {tok[1]!r}", tok)
            labels.append(tok[1])
            if self.peek()[1] == ",":
                self.next()
            elif self.peek()[1] != ")":
                raise self.error(f"expected ',' or ')' in a label list, got {self.peek()[1]!r}")
        self.next()
        return tuple(labels)

    def parse_primary(self):
        kind, value, pos = self.peek()
        if kind == "number":
            self.next()
            return Number(float(int(value, 16)) if value.startswith("0x") else float(value))
        if kind == "duration":
            raise self.error(f"a duration ({value}) is only allowed inside [...] or after offset")
        if value == "(":
            self.next()
            node = self.parse_or()
            self.expect(")")
            return node
        if value == "{":
            return self.selector(None)
        if kind == "ident":
            if value.lower() in ("inf", "nan") and self.peek(1)[1] != "{":
                self.next()
                return Number(math.inf if value.lower() == "inf" else math.nan)
            if value in _UNSUPPORTED:
                raise self.error(f"{value} is not supported by this evaluator")
            if value in _AGGREGATIONS and self.peek(1)[1] in ("(", "by", "without"):
                return self.aggregation()
            if self.peek(1)[1] == "(":
                if value not in _FUNCTIONS:
                    raise self.error(f"unknown function {value!r}: this evaluator knows {sorted(_FUNCTIONS)}")
                return self.call()
            if value in ("by", "without", "on", "ignoring", "bool", "offset", "and", "or", "unless"):
                raise self.error(f"unexpected keyword {value!r}: expected a selector, number or function")
            self.next()
            return self.selector(value)
        raise self.error(f"unexpected {value or 'end of input'!r}: expected a selector, number, function or '('")

    def selector(self, name):
        matchers = []
        if self.peek()[1] == "{":
            self.next()
            while self.peek()[1] != "}":
                tok = self.next()
                if tok[0] != "ident" or not LABEL_NAME_RE.match(tok[1]):
                    raise self.error(f"expected a label name in a matcher, got {tok[1]!r}", tok)
                op = self.next()
                if op[1] not in ("=", "!=", "=~", "!~"):
                    raise self.error(f"expected a matcher operator (=, !=, =~, !~), got {op[1]!r}", op)
                val = self.next()
                if val[0] != "string":
                    raise self.error(f"expected a quoted string as the label value, got {val[1]!r}", val)
                text = _unquote(val[1])
                if op[1] in ("=~", "!~"):
                    try:
                        re.compile(text)
                    except re.error as exc:
                        raise self.error(f"invalid regular expression {text!r}: {exc}", val) from None
                if tok[1] == "__name__" and op[1] == "=":
                    name = text
                else:
                    matchers.append((tok[1], op[1], text))
                if self.peek()[1] == ",":
                    self.next()
                elif self.peek()[1] != "}":
                    raise self.error(f"expected ',' or '}}' in a selector, got {self.peek()[1]!r}")
            self.next()
        if name is None and not any(not _matches_empty(op, v) for _, op, v in matchers):
            raise self.error("a selector needs a metric name or a matcher that does not match the empty string")
        return Selector(name, tuple(matchers))

    def aggregation(self):
        op = self.next()[1]
        grouping, without = (), False
        if self.peek()[1] in ("by", "without"):
            without = self.next()[1] == "without"
            grouping = self.label_list()
        self.expect("(")
        expr = self.parse_or()
        self.expect(")")
        if self.peek()[1] in ("by", "without"):
            without = self.next()[1] == "without"
            grouping = self.label_list()
        return Aggregate(op, expr, grouping, without)

    def call(self):
        name_tok = self.next()
        name = name_tok[1]
        self.expect("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.parse_or())
            if self.peek()[1] == ",":
                self.next()
            elif self.peek()[1] != ")":
                raise self.error(f"expected ',' or ')' in the arguments of {name}, got {self.peek()[1]!r}")
        self.next()
        expected = {"histogram_quantile": 2, "clamp_min": 2, "clamp_max": 2, "vector": 1, "time": 0,
                    "quantile_over_time": 2}.get(name, 1)
        if len(args) != expected:
            raise self.error(f"{name} takes {expected} argument(s), got {len(args)}", name_tok)
        range_arg = -1 if name == "quantile_over_time" else 0
        if name in _RANGE_FUNCTIONS or name == "quantile_over_time":
            arg = args[range_arg]
            if not (isinstance(arg, Selector) and arg.range_ms is not None):
                raise self.error(f"{name} expects a range vector such as x[5m]; a threshold on the raw series "
                                 "needs no function", name_tok)
        elif any(isinstance(a, Selector) and a.range_ms is not None for a in args):
            raise self.error(f"{name} expects an instant vector, got a range vector", name_tok)
        return Call(name, tuple(args))


def _is_scalar(node) -> bool:
    if isinstance(node, Number):
        return True
    if isinstance(node, Neg):
        return _is_scalar(node.expr)
    if isinstance(node, Binary):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return isinstance(node, Call) and node.name == "time"


def _matches_empty(op, value) -> bool:
    if op == "=":
        return value == ""
    if op == "!=":
        return value != ""
    hit = re.fullmatch(value, "") is not None
    return hit if op == "=~" else not hit


def _unquote(text):
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def parse_promql(text: str):
    """Parse ``text`` into this module's syntax tree; ``PromQLError`` names what is wrong and where."""
    node = _Parser(text).parse()
    if isinstance(node, Selector) and node.range_ms is not None:
        raise PromQLError(text, 0, "a range vector cannot be the result of an expression (wrap it in a function)")
    return node


# ----------------------------------------------------------------------------- evaluation

def _drop_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != "__name__")


def _signature(labels: Labels, on, ignoring) -> Labels:
    if on is not None:
        return tuple(p for p in labels if p[0] in on)
    return tuple(p for p in labels if p[0] != "__name__" and p[0] not in ignoring)


_ARITH = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) *
                                       math.copysign(1, b)),
    "%": lambda a, b: math.fmod(a, b) if b else math.nan,
}
_CMP = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
        "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}


class Engine:
    """Evaluates PromQL (the subset in the module doc) over a ``SeriesStore`` at given times.

    ``query(expr, t)`` returns a float (a scalar) or a dict ``{labels: value}`` (an instant
    vector); ``t`` is in seconds. ``lookback`` is the instant selector's lookback (5 m).
    """

    def __init__(self, store: SeriesStore, *, lookback: float = LOOKBACK_MS / 1000):
        self.store = store
        self.lookback_ms = round(lookback * 1000)
        self._parsed: dict[str, object] = {}

    def parse(self, expr: str):
        if expr not in self._parsed:
            self._parsed[expr] = parse_promql(expr)
        return self._parsed[expr]

    def query(self, expr, t: float):
        node = self.parse(expr) if isinstance(expr, str) else expr
        return self._eval(node, round(t * 1000))

    def query_vector(self, expr, t: float) -> dict[Labels, float]:
        value = self.query(expr, t)
        if not isinstance(value, dict):
            raise PromQLError(str(expr), 0, "expected an instant vector, the expression is a scalar")
        return value

    def _eval(self, node, t):
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Neg):
            v = self._eval(node.expr, t)
            return -v if isinstance(v, float) else {_drop_name(k): -x for k, x in v.items()}
        if isinstance(node, Selector):
            out = {}
            for key in self._select(node):
                found = self.store.last_before(key, t - node.offset_ms, self.lookback_ms)
                if found is not None:
                    out[key] = found[1]
            return out
        if isinstance(node, Call):
            return self._call(node, t)
        if isinstance(node, Aggregate):
            return self._aggregate(node, t)
        if isinstance(node, Binary):
            return self._binary(node, t)
        raise TypeError(node)

    def _select(self, sel: Selector):
        matchers = list(sel.matchers)
        if sel.name is not None:
            matchers.append(("__name__", "=", sel.name))
        return self.store.select(matchers)

    def _call(self, node: Call, t):
        name = node.name
        if name == "time":
            return t / 1000
        if name == "vector":
            v = self._eval(node.args[0], t)
            return {(): v} if isinstance(v, float) else v
        if name in _RANGE_FUNCTIONS or name == "quantile_over_time":
            sel = node.args[-1]
            q = self._eval(node.args[0], t) if name == "quantile_over_time" else None
            end = t - sel.offset_ms
            start = end - sel.range_ms
            out = {}
            for key in self._select(sel):
                tm, vs = self.store.range(key, start, end)
                if name in ("rate", "increase", "delta"):
                    v = extrapolated_rate(tm, vs, start, end, is_counter=name != "delta", is_rate=name == "rate")
                elif name == "quantile_over_time":
                    v = _quantile_over(q, vs) if vs else None
                else:
                    v = _OVER_TIME[name](vs) if vs else None
                if v is not None:
                    out[_drop_name(key)] = v
            return out
        if name == "histogram_quantile":
            q = self._eval(node.args[0], t)
            vec = self._eval(node.args[1], t)
            if not isinstance(q, float) or not isinstance(vec, dict):
                raise PromQLError(str(node), 0, "histogram_quantile(scalar, instant vector) expected")
            groups: dict[Labels, list] = {}
            for key, v in vec.items():
                d = dict(key)
                if "le" not in d:
                    continue
                try:
                    le = float(d["le"])
                except ValueError:
                    continue
                groups.setdefault(tuple(p for p in key if p[0] not in ("le", "__name__")), []).append((le, v))
            return {k: histogram_quantile(q, b) for k, b in groups.items()}
        v = self._eval(node.args[0], t)
        if name == "abs":
            fn = abs
        else:
            bound = self._eval(node.args[1], t)
            fn = (lambda x: max(x, bound)) if name == "clamp_min" else (lambda x: min(x, bound))
        if isinstance(v, float):
            raise PromQLError(name, 0, f"{name} expects an instant vector, got a scalar")
        return {_drop_name(k): fn(x) for k, x in v.items()}

    def _aggregate(self, node: Aggregate, t):
        vec = self._eval(node.expr, t)
        if not isinstance(vec, dict):
            raise PromQLError(node.op, 0, f"{node.op}(...) expects an instant vector, got a scalar")
        groups: dict[Labels, list] = {}
        for key, v in vec.items():
            if node.without:
                g = tuple(p for p in key if p[0] != "__name__" and p[0] not in node.grouping)
            else:
                g = tuple(p for p in key if p[0] in node.grouping)
            groups.setdefault(g, []).append(v)
        fn = {"sum": math.fsum, "avg": lambda vs: math.fsum(vs) / len(vs), "min": min, "max": max,
              "count": lambda vs: float(len(vs))}[node.op]
        return {g: fn(vs) for g, vs in groups.items()}

    def _binary(self, node: Binary, t):
        lhs, rhs, op = self._eval(node.lhs, t), self._eval(node.rhs, t), node.op
        if op in ("and", "or", "unless"):
            if not isinstance(lhs, dict) or not isinstance(rhs, dict):
                raise PromQLError(op, 0, f"'{op}' needs instant vectors on both sides")
            right = {_signature(k, node.on, node.ignoring) for k in rhs}
            if op == "and":
                return {k: v for k, v in lhs.items() if _signature(k, node.on, node.ignoring) in right}
            if op == "unless":
                return {k: v for k, v in lhs.items() if _signature(k, node.on, node.ignoring) not in right}
            left = {_signature(k, node.on, node.ignoring) for k in lhs}
            out = dict(lhs)
            out.update({k: v for k, v in rhs.items() if _signature(k, node.on, node.ignoring) not in left})
            return out
        comparison = op in _CMP
        if isinstance(lhs, float) and isinstance(rhs, float):
            if comparison and not node.bool_mode:
                raise PromQLError(op, 0, "comparisons between scalars must use the bool modifier")
            return float(_CMP[op](lhs, rhs)) if comparison else _ARITH[op](lhs, rhs)
        drop = not comparison or node.bool_mode
        if isinstance(lhs, float) or isinstance(rhs, float):
            scalar_left = isinstance(lhs, float)
            vec = rhs if scalar_left else lhs
            out = {}
            for key, v in vec.items():
                a, b = (lhs, v) if scalar_left else (v, rhs)
                label = _drop_name(key) if drop else key
                if comparison:
                    ok = _CMP[op](a, b)
                    if node.bool_mode:
                        out[label] = float(ok)
                    elif ok:
                        out[label] = v
                else:
                    out[label] = _ARITH[op](a, b)
            return out
        right: dict[Labels, tuple] = {}
        for key, v in rhs.items():
            sig = _signature(key, node.on, node.ignoring)
            if sig in right:
                raise PromQLError(op, 0, "many-to-many matching not allowed: the right side has two series "
                                  f"with labels {dict(sig)}")
            right[sig] = (key, v)
        out, seen = {}, set()
        for key, a in lhs.items():
            sig = _signature(key, node.on, node.ignoring)
            if sig not in right:
                continue
            if sig in seen:
                raise PromQLError(op, 0, f"many-to-many matching not allowed: the left side has two series with "
                                  f"labels {dict(sig)}")
            seen.add(sig)
            b = right[sig][1]
            if node.on is not None:
                label = tuple(p for p in key if p[0] in node.on)
            else:
                label = tuple(p for p in key if p[0] not in node.ignoring)
            if drop:
                label = _drop_name(label)
            if comparison:
                ok = _CMP[op](a, b)
                if node.bool_mode:
                    out[label] = float(ok)
                elif ok:
                    out[label] = a
            else:
                out[label] = _ARITH[op](a, b)
        return out


def check_expression(expr: str) -> str:
    """``expr`` if it parses, else ``PromQLError``; also checks label names in ``by``/``on`` lists."""
    node = parse_promql(expr)
    _walk_labels(node)
    return expr


def _walk_labels(node):
    if isinstance(node, Aggregate):
        for name in node.grouping:
            check_label_name(name, allow_reserved=True)
        _walk_labels(node.expr)
    elif isinstance(node, Binary):
        _walk_labels(node.lhs)
        _walk_labels(node.rhs)
    elif isinstance(node, (Call,)):
        for a in node.args:
            _walk_labels(a)
    elif isinstance(node, Neg):
        _walk_labels(node.expr)

