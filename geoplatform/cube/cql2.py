"""CQL2 filtering for the cube (OGC 21-065r2, CQL2 1.0).

A filter goes through two steps, and never reaches SQL or an evaluator as text:

1. :func:`parse_filter` turns cql2-text or cql2-json into a pygeofilter AST;
2. :func:`compile_filter` checks it against the dataset's queryables and splits it
   into an arrow expression the parquet scan can push down and a residual the
   reader evaluates on the rows it read (see :class:`CompiledFilter`).

Parsing uses pygeofilter's parsers, with the corrections CQL2 1.0 needs over
pygeofilter 0.4, which implements an earlier draft:

* text: pygeofilter's own grammar and transformer, with ``%override`` rules for
  what the draft had differently - AND binding tighter than OR, function-call
  temporal predicates ``T_AFTER(a, b)`` and their 1.0 names (``T_STARTS``...,
  ``T_DISJOINT``), ``T_INTERSECTS`` distinct from ``T_OVERLAPS``,
  ``INTERVAL('..', ...)`` with dates, open ends and properties, ``''``/``\\'``
  escapes, ``%``/``div``/``^``, ``POINT Z``, one-letter property names;
* json: pygeofilter's walker, after a pass that turns the 1.0 forms it does not
  know (``between`` with three arguments, ``casei``/``accenti``, ``t_*``,
  ``bbox`` literals, property intervals, ...) into nodes or values it passes on.

Semantics worth knowing (CQL2 leaves some to the implementation):

* three-valued logic: a predicate on NULL is NULL, ``NOT NULL`` is NULL, and
  only TRUE matches;
* a date compared with a timestamp is compared at day resolution (the
  timestamp's UTC calendar date);
* ``datetime`` is the feature's valid time ``[valid_from, valid_to]`` when
  ``time_fields`` says so; a NULL ``valid_to`` (or ``valid_from``) is an open end;
* ``CASEI`` is Unicode full case folding and ``ACCENTI`` strips non-spacing
  marks (not the Japanese voicing marks); both run in the residual;
* a geometry literal is in the dataset's storage CRS (``filter-crs`` is the
  caller's business);
* arithmetic division by zero yields NULL.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from lark import Lark, v_args
from lark.exceptions import UnexpectedInput
from pygeofilter import ast, values
from pygeofilter.cql2 import SPATIAL_PREDICATES_MAP
from pygeofilter.parsers.cql2_json import parser as _json_parser
from pygeofilter.parsers.cql2_text import parser as _text_parser

from geoplatform.cube.cql2_eval import BBOX_COLUMNS, FieldPath, QueryableType, compile_ast
from geoplatform.cube.cql2_model import (
    CompiledFilter,
    IntDiv,
    Mod,
    Pow,
    Residual,
    TimeIntersects,
    accenti,
    casei,
    evaluate,
)
from geoplatform.errors import FilterError

__all__ = [
    "BBOX_COLUMNS",
    "SUPPORTED_CONFORMANCE",
    "CompiledFilter",
    "FilterLang",
    "QueryableType",
    "Residual",
    "accenti",
    "casei",
    "compile_filter",
    "evaluate",
    "parse_filter",
]

FilterLang = Literal["cql2-text", "cql2-json"]

_CONF = "http://www.opengis.net/spec/cql2/1.0/conf/"
SUPPORTED_CONFORMANCE: tuple[str, ...] = tuple(
    _CONF + name
    for name in (
        "cql2-text",
        "cql2-json",
        "basic-cql2",
        "advanced-comparison-operators",
        "case-insensitive-comparison",
        "accent-insensitive-comparison",
        "basic-spatial-functions",
        "basic-spatial-functions-plus",
        "spatial-functions",
        "temporal-functions",
        "arithmetic",
    )
)
"""The CQL2 1.0 conformance classes implemented in full (array functions,
custom functions and property-property comparisons are not declared)."""

# --------------------------------------------------------------------------
# Temporal literals (strict RFC 3339, as CQL2 requires)
# --------------------------------------------------------------------------

_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


def _parse_date(text: str) -> date:
    match = _DATE_RE.match(text)
    try:
        if match is None:
            raise ValueError("expected YYYY-MM-DD")
        return date(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise FilterError(f"Invalid date '{text}': {exc}") from exc


def _parse_timestamp(text: str) -> datetime:
    match = _TIMESTAMP_RE.match(text)
    try:
        if match is None:
            raise ValueError("expected YYYY-MM-DDThh:mm:ss[.f]Z")
        year, month, day, hour, minute, second, frac, _z, sign, off_h, off_m = match.groups()
        micro = int((frac or "0")[:6].ljust(6, "0"))  # finer than microseconds: truncated
        fields = (int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
        value = datetime(*fields, tzinfo=timezone.utc)
        if sign:  # RFC 3339 offsets are accepted and converted, though CQL2 asks for 'Z'
            offset = (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
            value = value.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(timezone.utc)
        return value
    except ValueError as exc:
        raise FilterError(f"Invalid timestamp '{text}': {exc}") from exc


def _parse_instant(text: str) -> date | datetime | None:
    """An INTERVAL bound: a date, a timestamp, or '..' (open, ``None``)."""
    if text == "..":
        return None
    return _parse_date(text) if _DATE_RE.match(text) else _parse_timestamp(text)


def _envelope(coords: Sequence[Any]) -> values.Envelope:
    """A BBOX literal (4 or 6 numbers, CQL2 order) as a pygeofilter envelope."""
    if len(coords) not in (4, 6) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords):
        raise FilterError(f"BBOX takes 4 or 6 numbers, got {list(coords)!r}")
    if len(coords) == 6:  # the vertical extent is ignored: the predicates are 2D
        coords = [coords[0], coords[1], coords[3], coords[4]]
    xmin, ymin, xmax, ymax = coords
    return values.Envelope(xmin, xmax, ymin, ymax)


# --------------------------------------------------------------------------
# cql2-text
# --------------------------------------------------------------------------

# Amendments to pygeofilter 0.4's cql2-text grammar, which follows a CQL2 draft.
# %override fails loudly if pygeofilter renames a rule, rather than drifting.
_IDENT_START = (
    r":_A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFE\u200C-\u200D"
    r"\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\U00010000-\U000EFFFF"
)
_GRAMMAR_AMENDMENTS = r"""
// AND binds tighter than OR (the draft grammar had them at one level)
%override ?condition: or_condition
?or_condition: and_condition
             | or_condition "OR"i and_condition                       -> or_
?and_condition: condition_1
              | and_condition "AND"i condition_1                      -> and_
%override ?condition_1: predicate
                      | "NOT"i condition_1                            -> not_
                      | "(" condition ")"
                      | boolean_condition
boolean_condition.-1: BOOLEAN
// only the CQL2 1.0 comparison operators (no 'eq', '!=', INCLUDE...)
%override ?predicate: expression "=" expression                       -> eq
                    | expression "<>" expression                      -> ne
                    | expression "<" expression                       -> lt
                    | expression "<=" expression                      -> lte
                    | expression ">" expression                       -> gt
                    | expression ">=" expression                      -> gte
                    | expression "BETWEEN"i expression "AND"i expression          -> between
                    | expression "NOT"i "BETWEEN"i expression "AND"i expression   -> not_between
                    | expression "LIKE"i expression                   -> like
                    | expression "NOT"i "LIKE"i expression            -> not_like
                    | expression "IN"i "(" expression ( "," expression )* ")"         -> in_
                    | expression "NOT"i "IN"i "(" expression ( "," expression )* ")"  -> not_in
                    | expression "IS"i "NULL"i                        -> null
                    | expression "IS"i "NOT"i "NULL"i                 -> not_null
                    | spatial_predicate
                    | temporal_predicate
%override ?spatial_predicate: _binary_spatial_predicate_func "(" expression "," expression ")" -> binary_spatial_predicate
// temporal predicates are function calls in 1.0, with the 1.0 names
%override ?temporal_predicate: _binary_temporal_predicate_func "(" expression "," expression ")" -> binary_temporal_predicate
%override !_binary_temporal_predicate_func: "T_AFTER"i | "T_BEFORE"i | "T_CONTAINS"i | "T_DISJOINT"i
                                          | "T_DURING"i | "T_EQUALS"i | "T_FINISHEDBY"i | "T_FINISHES"i
                                          | "T_INTERSECTS"i | "T_MEETS"i | "T_METBY"i | "T_OVERLAPPEDBY"i
                                          | "T_OVERLAPS"i | "T_STARTEDBY"i | "T_STARTS"i
%override ?product: power
                  | product "*" power                                 -> mul
                  | product "/" power                                 -> div
                  | product "%" power                                 -> mod
                  | product "DIV"i power                              -> intdiv
?power: atom
      | atom "^" atom                                                 -> pow
// TIMESTAMP(), DATE(), INTERVAL(), BBOX(), CASEI(), ACCENTI() parse as function
// calls and become literals in the transformer: the draft rules allowed neither
// '..' nor dates nor properties in INTERVAL, and reserved DATE as a keyword
%override ?literal: number
                  | BOOLEAN
                  | SINGLE_QUOTED
                  | ewkt_geometry                                     -> geometry
%override attribute: IDENTIFIER
                   | DOUBLE_QUOTED
IDENTIFIER: /[@IDENT_START@][@IDENT_START@.0-9\u0300-\u036F\u203F-\u2040]*/
%override SINGLE_QUOTED: /'(?:[^'\\]|''|\\.)*'/s
// CQL2 whitespace includes line breaks; the draft grammar ignored only spaces/tabs
%import common.WS -> CQL2_WS
%ignore CQL2_WS
%extend wkt__point: "POINT" "Z" "(" wkt__coordinate ")"
%extend wkt__linestring: "LINESTRING" "Z" "(" wkt__coordinate_list ")"
%extend wkt__polygon: "POLYGON" "Z" "(" wkt__coordinate_lists ")"
%extend wkt__multipoint: "MULTIPOINT" "Z" "(" wkt__coordinate_list ")"
                       | "MULTIPOINT" "Z" "(" "(" wkt__coordinate ")" ( "," "(" wkt__coordinate ")" )* ")" -> wkt__multipoint_2
%extend wkt__multilinestring: "MULTILINESTRING" "Z" "(" wkt__coordinate_lists ")"
%extend wkt__multipolygon: "MULTIPOLYGON" "Z" "(" "(" wkt__coordinate_lists ")" ( "," "(" wkt__coordinate_lists ")" )* ")"
%extend wkt__geometrycollection: "GEOMETRYCOLLECTION" "Z" "(" wkt__geometry ( "," wkt__geometry )* ")"
""".replace("@IDENT_START@", _IDENT_START)

_TEMPORAL_NAMES: dict[str, type[ast.TemporalPredicate]] = {
    "t_after": ast.TimeAfter,
    "t_before": ast.TimeBefore,
    "t_contains": ast.TimeContains,
    "t_disjoint": ast.TimeDisjoint,
    "t_during": ast.TimeDuring,
    "t_equals": ast.TimeEquals,
    "t_finishedby": ast.TimeEndedBy,
    "t_finishes": ast.TimeEnds,
    "t_intersects": TimeIntersects,
    "t_meets": ast.TimeMeets,
    "t_metby": ast.TimeMetBy,
    "t_overlappedby": ast.TimeOverlappedBy,
    "t_overlaps": ast.TimeOverlaps,
    "t_startedby": ast.TimeBegunBy,
    "t_starts": ast.TimeBegins,
}
_TEXT_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r", "'": "'"}
_ESCAPE_RE = re.compile(r"''|\\(.)", re.S)


def _unescape(body: str) -> str:
    # other backslash sequences stay as written: LIKE needs its \% \_ \\ intact
    return _ESCAPE_RE.sub(lambda m: "'" if m.group(0) == "''" else _TEXT_ESCAPES.get(m.group(1), m.group(0)), body)


def _string_arg(name: str, args: Sequence[Any]) -> str:
    if len(args) != 1 or not isinstance(args[0], str):
        raise FilterError(f"{name}() takes one quoted string, got {len(args)} argument(s)")
    return args[0]


@v_args(meta=False, inline=True)
class _TextTransformer(_text_parser.CQLTransformer):  # type: ignore[misc]
    """pygeofilter's cql2-text transformer, adjusted to the amended grammar."""

    def binary_temporal_predicate(self, op: Any, lhs: Any, rhs: Any) -> ast.Node:
        return _TEMPORAL_NAMES[str(op).lower()](lhs, rhs)

    def binary_spatial_predicate(self, op: Any, lhs: Any, rhs: Any) -> ast.Node:
        return SPATIAL_PREDICATES_MAP[str(op).lower()](lhs, rhs)

    def boolean_condition(self, value: bool) -> bool:
        return value

    def like(self, node: Any, pattern: Any) -> ast.Node:
        # CQL2's single-character wildcard is '_' (pygeofilter's draft says '.')
        return ast.Like(node, pattern, nocase=False, wildcard="%", singlechar="_", escapechar="\\", not_=False)

    def not_like(self, node: Any, pattern: Any) -> ast.Node:
        return ast.Like(node, pattern, nocase=False, wildcard="%", singlechar="_", escapechar="\\", not_=True)

    def function(self, func_name: ast.Attribute, *args: Any) -> Any:
        name = str(func_name.name)
        key = name.lower()
        if key == "timestamp":
            return _parse_timestamp(_string_arg("TIMESTAMP", args))
        if key == "date":
            return _parse_date(_string_arg("DATE", args))
        if key == "interval":
            if len(args) != 2:
                raise FilterError(f"INTERVAL() takes two arguments, got {len(args)}")
            return values.Interval(*(_parse_instant(a) if isinstance(a, str) else a for a in args))
        if key == "bbox":
            return _envelope(args)
        if key in ("casei", "accenti"):
            return ast.Function(key, list(args))
        return ast.Function(name, list(args))

    def neg(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
        return ast.Mul(-1, value)

    def mod(self, lhs: Any, rhs: Any) -> ast.Node:
        return Mod(lhs, rhs)

    def intdiv(self, lhs: Any, rhs: Any) -> ast.Node:
        return IntDiv(lhs, rhs)

    def pow(self, lhs: Any, rhs: Any) -> ast.Node:
        return Pow(lhs, rhs)

    def SINGLE_QUOTED(self, token: Any) -> str:  # noqa: N802 - lark terminal name
        return _unescape(str(token)[1:-1])

    def wkt__multipoint_2(self, *coordinates: Any) -> dict[str, Any]:
        # the inherited version prints to stdout
        return {"type": "MultiPoint", "coordinates": coordinates}

    def wkt__geometry_with_srid(self, srid: Any, geometry: Any) -> Any:
        raise FilterError("EWKT 'SRID=...;' prefixes are not CQL2; the CRS comes from filter-crs")


@functools.cache
def _text_parser_instance() -> Lark:
    grammar_dir = os.path.dirname(_text_parser.__file__)
    with open(os.path.join(grammar_dir, "grammar.lark"), encoding="utf-8") as fh:
        grammar = fh.read() + _GRAMMAR_AMENDMENTS
    lark_logger = logging.getLogger("lark")
    level = lark_logger.level
    lark_logger.setLevel(logging.WARNING)  # pygeofilter sets lark to DEBUG: "unused rule" noise
    try:
        return Lark(
            grammar,
            parser="lalr",
            maybe_placeholders=False,
            transformer=_TextTransformer(),
            import_paths=[os.path.dirname(grammar_dir)],
        )
    finally:
        lark_logger.setLevel(level)


_ARRAY_CALL_RE = re.compile(r"\bA_(EQUALS|CONTAINS|CONTAINEDBY|OVERLAPS)\s*\(", re.I)
_QUOTED_RE = re.compile(r"'(?:[^'\\]|''|\\.)*'|\"[^\"]*\"", re.S)


def _parse_error(lang: str, message: str, cause: BaseException | None = None, **details: Any) -> FilterError:
    """A FilterError for a filter that does not parse, naming the filter-lang."""
    if isinstance(cause, FilterError):  # raised by our own literal checks
        details = {**cause.details, **details}
    return FilterError(f"Invalid {lang} filter: {message}", **{"filter-lang": lang, **details})


def _parse_text(text: str) -> Any:
    try:
        return _text_parser_instance().parse(text)
    except UnexpectedInput as exc:
        if _ARRAY_CALL_RE.search(text):  # the grammar has no array literals at all
            raise _parse_error("cql2-text", "array functions (A_EQUALS, A_CONTAINS, ...) are not supported") from exc
        message = str(exc).strip().splitlines()[0]
        unquoted = _QUOTED_RE.sub("", text)
        if unquoted.count("(") != unquoted.count(")"):
            message += " (unbalanced parentheses)"
        context = exc.get_context(text, span=30).rstrip("\n")
        raise _parse_error(
            "cql2-text", f"{message}\n{context}", line=exc.line, column=exc.column, parser_message=str(exc)
        ) from exc
    except FilterError as exc:  # a malformed literal, found while building the tree
        raise _parse_error("cql2-text", exc.message, exc) from exc
    except RecursionError as exc:
        raise _parse_error("cql2-text", "nested too deeply") from exc


# --------------------------------------------------------------------------
# cql2-json
# --------------------------------------------------------------------------

# ops pygeofilter's walker maps correctly; everything else is rewritten first
_JSON_PASSTHROUGH = {"and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "in", "isnull", "+", "-", "*", "/"}
_JSON_PASSTHROUGH |= set(SPATIAL_PREDICATES_MAP) | {"a_equals", "a_contains", "a_containedby", "a_overlaps"}
_JSON_EXTRA_ARITHMETIC: dict[str, type[ast.Arithmetic]] = {"%": Mod, "div": IntDiv, "^": Pow}


def _walk(node: Any) -> Any:
    """Prepare, then let pygeofilter's walker build the node."""
    return _json_parser.walk_cql_json(_prepare_json(node))


def _args(node: Mapping[str, Any], count: int | None = None) -> list[Any]:
    args = node.get("args")
    if not isinstance(args, list):
        raise FilterError(f"'{node.get('op')}' needs an 'args' array")
    if count is not None and len(args) != count:
        raise FilterError(f"'{node.get('op')}' takes {count} arguments, got {len(args)}")
    return args


def _prepare_json(node: Any) -> Any:
    """Rewrite the CQL2 1.0 JSON forms that pygeofilter 0.4 misreads."""
    if isinstance(node, list):
        return [_prepare_json(item) for item in node]
    if node is None:
        raise FilterError("null is not a CQL2 value")
    if not isinstance(node, dict):
        return node  # str, number, bool - and values/nodes built below
    if "filter" in node and "op" not in node:  # {"filter-lang": ..., "filter": ...} wrapper
        if node.get("filter-lang", "cql2-json") != "cql2-json":
            raise FilterError(f"Expected filter-lang cql2-json, got {node.get('filter-lang')!r}")
        return _prepare_json(node["filter"])
    if "property" in node:
        if not isinstance(node["property"], str) or not node["property"]:
            raise FilterError(f"A property name must be a non-empty string, got {node['property']!r}")
        return ast.Attribute(node["property"])
    if "timestamp" in node:
        return _parse_timestamp(str(node["timestamp"]))
    if "date" in node:
        return _parse_date(str(node["date"]))
    if "interval" in node:
        bounds = node["interval"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise FilterError("An interval needs exactly two bounds")
        return values.Interval(*(_parse_instant(b) if isinstance(b, str) else _walk(b) for b in bounds))
    if "bbox" in node:
        # pygeofilter passes the CQL2 order to Envelope(x1, x2, y1, y2) unchanged
        return _envelope(node["bbox"] if isinstance(node["bbox"], list) else [])
    if "type" in node and ("coordinates" in node or "geometries" in node):
        return values.Geometry(node)
    if "op" not in node:
        raise FilterError(f"Unrecognised cql2-json object with keys {sorted(node)}")
    op = node["op"]
    if not isinstance(op, str):
        raise FilterError(f"'op' must be a string, got {op!r}")
    key = op.lower()
    if key in _TEMPORAL_NAMES:
        lhs, rhs = _args(node, 2)
        return _TEMPORAL_NAMES[key](_walk(lhs), _walk(rhs))
    if key in ("casei", "accenti"):
        return ast.Function(key, [_walk(a) for a in _args(node, 1)])
    if key == "between":
        args = _args(node)
        if len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:  # pre-1.0 form
            args = [args[0], *args[1]]
        if len(args) != 3:
            raise FilterError(f"'between' takes 3 arguments, got {len(args)}")
        return ast.Between(*(_walk(a) for a in args), not_=False)
    if key == "like":
        lhs, pattern = _args(node, 2)
        return ast.Like(
            _walk(lhs), _walk(pattern), nocase=False, wildcard="%", singlechar="_", escapechar="\\", not_=False
        )
    if key in _JSON_EXTRA_ARITHMETIC:
        lhs, rhs = _args(node, 2)
        return _JSON_EXTRA_ARITHMETIC[key](_walk(lhs), _walk(rhs))
    if key in _JSON_PASSTHROUGH:
        args = node.get("args")
        if key == "in":
            lhs, items = _args(node, 2)
            if not isinstance(items, list):
                raise FilterError("'in' needs a list of values as its second argument")
        elif key in ("and", "or"):
            if len(_args(node)) < 2:
                raise FilterError(f"'{op}' needs at least two arguments")
        elif key not in ("not", "isnull"):
            _args(node, 2)
        return {"op": "isNull" if key == "isnull" else key, "args": _prepare_json(args)}
    # any other op is a function call in CQL2 1.0; the compiler names it unknown
    return ast.Function(op, [_walk(a) for a in _args(node)])


def _parse_json(data: Any) -> Any:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise _parse_error(
                "cql2-json", f"{exc.msg} at line {exc.lineno}, column {exc.colno}", line=exc.lineno, column=exc.colno
            ) from exc
    try:
        return _json_parser.parse(_prepare_json(data))
    except FilterError as exc:
        raise _parse_error("cql2-json", exc.message, exc) from exc
    except RecursionError as exc:
        raise _parse_error("cql2-json", "nested too deeply") from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _parse_error("cql2-json", str(exc)) from exc


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def parse_filter(text_or_json: str | Mapping[str, Any] | bool, lang: FilterLang | None = None) -> Any:
    """Parse a CQL2 filter into a pygeofilter AST.

    ``lang`` is ``"cql2-text"`` or ``"cql2-json"``; without it a dict, or a
    string starting with ``{``, is cql2-json and any other string cql2-text.
    Raises :class:`~geoplatform.errors.FilterError` naming the filter-lang and,
    when the parser knows it, the position.
    """
    if lang not in (None, "cql2-text", "cql2-json"):
        raise FilterError(f"Unknown filter-lang {lang!r}; use cql2-text or cql2-json")
    if isinstance(text_or_json, bool) and lang != "cql2-text":  # `true` is a whole cql2-json filter
        return _parse_json(text_or_json)
    if isinstance(text_or_json, Mapping):
        if lang == "cql2-text":
            raise _parse_error("cql2-text", "a cql2-text filter must be a string, not a JSON object")
        return _parse_json(dict(text_or_json))
    if not isinstance(text_or_json, str):
        raise FilterError(f"A filter must be a string or a JSON object, not {type(text_or_json).__name__}")
    if lang is None:
        lang = "cql2-json" if text_or_json.lstrip().startswith("{") else "cql2-text"
    if lang == "cql2-json":
        return _parse_json(text_or_json)
    if not text_or_json.strip():
        raise _parse_error("cql2-text", "the filter is empty")
    return _parse_text(text_or_json)


def compile_filter(
    ast_or_filter: Any,
    queryables: Mapping[str, QueryableType],
    geometry_name: str = "geometry",
    time_fields: Mapping[str, str] | None = None,
    *,
    bbox_columns: bool | Sequence[FieldPath] = False,
) -> CompiledFilter:
    """Check a parsed filter against a dataset's queryables and compile it.

    ``queryables`` maps each property to its type. The feature geometry is the
    property ``geometry`` (also ``geom`` and ``geometry_name``). ``time_fields``
    gives the valid time that ``datetime`` denotes: ``{"valid_from": col,
    "valid_to": col}`` for an interval, or ``{"datetime": col}`` for an instant.
    ``bbox_columns=True`` adds a pre-filter on the per-row bbox columns
    :data:`BBOX_COLUMNS` for spatial predicates; a sequence of four field paths
    names other ones (e.g. ``[("bbox", "xmin"), ...]`` for a struct column).

    For convenience a filter string or JSON object is parsed first.
    Raises :class:`~geoplatform.errors.FilterError` for unknown properties,
    type mismatches and unsupported constructs.
    """
    node = ast_or_filter
    if isinstance(node, (str, Mapping)):
        node = parse_filter(node)
    return compile_ast(node, queryables, geometry_name, time_fields, bbox_columns)
