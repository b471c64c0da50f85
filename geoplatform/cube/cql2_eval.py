"""Compile a CQL2 syntax tree into an arrow pushdown part and a residual.

This is the lower half of :mod:`geoplatform.cube.cql2`: it takes the
pygeofilter AST that the parsers there produce and turns it into

* an arrow :class:`pyarrow.compute.Expression` over attribute columns, which a
  reader can hand to a parquet scan (row-group pruning and row filtering), and
* a *residual* callable for whatever arrow cannot express (spatial predicates
  on the geometry array, ``CASEI``/``ACCENTI``), evaluated on the rows read.

The values it compiles with (literal, pushable expression or residual
evaluator), the operators on them and the result types live in
:mod:`geoplatform.cube.cql2_model`.

Nulls follow SQL three-valued logic throughout (CQL2 1.0 requires predicates on
``NULL`` to be ``NULL``, and ``NOT NULL`` is ``NULL``): booleans are arrow
booleans with nulls, combined with the Kleene kernels, and only the final mask
turns unknown into "no match".
"""

from __future__ import annotations

import dataclasses

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pygeofilter import ast, values

from geoplatform.cube.cql2_model import (
    _ARITHMETIC_NODES,
    _ARRAY_FUNCTIONS,
    _ARROW_TYPES,
    _COMPARE,
    _COMPARISON_NODES,
    _OPEN,
    _SPATIAL,
    _STRING_FUNCTIONS,
    _TEMPORAL,
    _UNSUPPORTED_NODES,
    _UTC,
    CompiledFilter,
    Residual,
    _apply,
    _bbox_area,
    _bbox_of,
    _bound_desc,
    _conjoin,
    _Ctx,
    _div_float,
    _div_trunc,
    _geometry_literal,
    _lit_int,
    _map_strings,
    _mod,
    _pow,
    _short,
    _TEnd,
    _Temporal,
    _truthy,
    _Val,
)
from geoplatform.errors import FilterError

QueryableType = Literal["string", "integer", "number", "boolean", "datetime", "date", "geometry"]
"""The type of a queryable property, as the dataset's schema declares it."""

BBOX_COLUMNS = ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")
"""Per-row bounding-box columns used for the spatial pre-filter (``bbox_columns=True``)."""

FieldPath = str | tuple[str, ...]
"""A column name, or a path into a struct column (``("bbox", "xmin")``)."""

_QUERYABLE_TYPES = frozenset(get_args(QueryableType))
_GEOMETRY_ALIASES = ("geometry", "geom")


# --------------------------------------------------------------------------
# The compiler
# --------------------------------------------------------------------------


@dataclass
class _Compiler:
    """Walks one AST against one dataset's queryables."""

    queryables: Mapping[str, str]
    geometry_name: str
    time_fields: Mapping[str, str]
    bbox_fields: tuple[FieldPath, ...] | None
    properties: set[str] = field(default_factory=set)
    uses_geometry: bool = False

    # ---- conditions -----------------------------------------------------

    def cond(self, node: Any) -> _Val:
        """Compile a node in boolean position."""
        if isinstance(node, bool):
            return _Val("boolean", repr(node).upper(), lit=node)
        if isinstance(node, ast.And):
            return self._and(self.cond(node.lhs), self.cond(node.rhs))
        if isinstance(node, ast.Or):
            return self._or(self.cond(node.lhs), self.cond(node.rhs))
        if isinstance(node, ast.Not):
            return self._not(self.cond(node.sub_node))
        if type(node) in _COMPARISON_NODES:
            return self._compare(_COMPARISON_NODES[type(node)], self.value(node.lhs), self.value(node.rhs))
        if isinstance(node, ast.Between):
            return self._negate_if(node.not_, self._between(node))
        if isinstance(node, ast.Like):
            return self._negate_if(node.not_, self._like(node))
        if isinstance(node, ast.In):
            return self._negate_if(node.not_, self._in(node))
        if isinstance(node, ast.IsNull):
            return self._negate_if(node.not_, self._is_null(node.lhs))
        if isinstance(node, ast.Include):
            return _Val("boolean", "INCLUDE", lit=not node.not_)
        if type(node) in _SPATIAL:
            return self._spatial(node)
        if isinstance(node, ast.BBox):  # pygeofilter's BBOX(geom, ...) predicate form
            envelope = values.Envelope(node.minx, node.maxx, node.miny, node.maxy)
            return self._spatial(ast.GeometryIntersects(node.lhs, envelope))
        if type(node) in _TEMPORAL:
            return self._temporal(node)
        for cls, message in _UNSUPPORTED_NODES.items():
            if isinstance(node, cls):
                raise FilterError(message)
        if isinstance(node, ast.Function):
            self._check_function_name(node.name)
            raise FilterError(f"{node.name.upper()}() does not return a boolean and cannot be used as a condition")
        if isinstance(node, ast.Attribute):
            raise FilterError(
                f"Property '{node.name}' is not a condition; compare it with a value (e.g. {node.name} = true)"
            )
        raise FilterError(f"Expected a condition, got {_short(node)}")

    def _negate_if(self, negate: bool, v: _Val) -> _Val:
        return self._not(v) if negate else v

    def _not(self, v: _Val) -> _Val:
        return _apply(pc.invert, [v], "boolean", f"NOT {v.desc}")

    def _and(self, a: _Val, b: _Val) -> _Val:
        # constant operands are folded away so that they never block pushdown
        for x, y in ((a, b), (b, a)):
            if x.is_lit and x.lit is True:
                return y
            if x.is_lit and x.lit is False:
                return x
        out = _apply(pc.and_kleene, [a, b], "boolean", f"({a.desc} AND {b.desc})")
        bounds = [x for x in (a.bbox, b.bbox) if x is not None]
        # each operand's box bounds the result; the smaller prunes more
        bbox = min(bounds, key=_bbox_area) if bounds else None
        hint = None
        if out.expr is None:  # what the operands push down still prunes for the whole
            hint = _conjoin([a.expr if a.expr is not None else a.hint, b.expr if b.expr is not None else b.hint])
        return _Val("boolean", out.desc, lit=out.lit, expr=out.expr, arr=out.arr, hint=hint, bbox=bbox,
                    ranges=_intersect_ranges(a.ranges, b.ranges))

    def _or(self, a: _Val, b: _Val) -> _Val:
        for x, y in ((a, b), (b, a)):
            if x.is_lit and x.lit is False:
                return y
            if x.is_lit and x.lit is True:
                return x
        out = _apply(pc.or_kleene, [a, b], "boolean", f"({a.desc} OR {b.desc})")
        bbox = None
        if a.bbox is not None and b.bbox is not None:
            (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.bbox, b.bbox
            bbox = (min(ax0, bx0), min(ay0, by0), max(ax1, bx1), max(ay1, by1))
        hint = None
        ha = a.expr if a.expr is not None else a.hint
        hb = b.expr if b.expr is not None else b.hint
        if out.expr is None and ha is not None and hb is not None:
            hint = pc.or_kleene(ha, hb)
        return _Val("boolean", out.desc, lit=out.lit, expr=out.expr, arr=out.arr, hint=hint, bbox=bbox,
                    ranges=_union_ranges(a.ranges, b.ranges))

    # ---- comparisons ----------------------------------------------------

    def _compare(self, op: str, a: _Val, b: _Val) -> _Val:
        kind = self._comparable(op, a, b)
        if kind == "temporal":
            assert a.temporal is not None and b.temporal is not None
            domain = self._domain(a.temporal, b.temporal)
            return self._tcmp(self._tterm(a.temporal.start, domain), op, self._tterm(b.temporal.start, domain))
        out = _apply(_COMPARE[op], [a, b], "boolean", f"{a.desc} {op} {b.desc}")
        ranges = _comparison_range(op, a, b)
        return out if ranges is None else dataclasses.replace(out, ranges=ranges)

    def _comparable(self, op: str, a: _Val, b: _Val) -> str:
        """Check the operand types of a comparison; return the family they share."""
        for v in (a, b):
            if v.type == "geometry":
                raise FilterError(
                    f"'{op}' cannot compare geometries ({v.desc}); use S_EQUALS or another spatial function"
                )
            if v.type == "interval":
                raise FilterError(
                    f"'{op}' cannot compare intervals ({v.desc}); use a temporal function such as T_EQUALS"
                )
        families = {"integer": "numeric", "number": "numeric", "datetime": "temporal", "date": "temporal"}
        fa, fb = families.get(a.type, a.type), families.get(b.type, b.type)
        if fa != fb:
            raise FilterError(f"Type mismatch in '{op}': {a.desc} is {a.type} but {b.desc} is {b.type}")
        return fa

    def _between(self, node: ast.Between) -> _Val:
        x, low, high = self.value(node.lhs), self.value(node.low), self.value(node.high)
        for v in (x, low, high):
            if v.type not in ("integer", "number"):
                raise FilterError(f"BETWEEN compares numbers, but {v.desc} is {v.type}")
        return self._and(self._compare("<=", low, x), self._compare("<=", x, high))

    def _in(self, node: ast.In) -> _Val:
        x = self.value(node.lhs)
        items = node.sub_nodes if isinstance(node.sub_nodes, list) else [node.sub_nodes]
        if not items:
            raise FilterError("IN needs at least one value")
        # a balanced OR tree keeps long lists from nesting deeply
        layer = [self._compare("=", x, self.value(item)) for item in items]
        while len(layer) > 1:
            pairs = [layer[i:i + 2] for i in range(0, len(layer), 2)]
            layer = [self._or(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
        return layer[0]

    def _like(self, node: ast.Like) -> _Val:
        x = self.value(node.lhs)
        if x.type != "string":
            raise FilterError(f"LIKE matches strings, but {x.desc} is {x.type}")
        pattern = self.value(node.pattern)
        if not (pattern.is_lit and pattern.type == "string"):
            raise FilterError(f"The LIKE pattern must be a string literal, not {pattern.desc} ({pattern.type})")
        # arrow's match_like is SQL LIKE: % and _ wildcards, backslash escape - CQL2's rules
        text, nocase = pattern.lit, bool(node.nocase)

        def match(s: Any) -> Any:
            return pc.match_like(s, pattern=text, ignore_case=nocase)

        return _apply(match, [x], "boolean", f"{x.desc} LIKE {text!r}")

    def _is_null(self, node: Any) -> _Val:
        if isinstance(node, (ast.Predicate, ast.Condition)):
            v = self.cond(node)
        else:
            v = self.value(node)
        desc = f"{v.desc} IS NULL"
        if v.is_lit:
            return _Val("boolean", desc, lit=v.lit is None)
        if v.type == "interval":
            raise FilterError(f"IS NULL is not defined for intervals ({v.desc}); test its bounds instead")
        if v.type == "geometry":
            source = v

            def missing(ctx: _Ctx) -> pa.Array:
                return pa.array(shapely.is_missing(ctx.value(source)))

            return _Val("boolean", desc, arr=missing)
        return _apply(pc.is_null, [v], "boolean", desc)

    # ---- values ---------------------------------------------------------

    def value(self, node: Any) -> _Val:
        """Compile a node in value position."""
        if isinstance(node, ast.Attribute):
            return self._property(str(node.name))
        if isinstance(node, bool):
            return _Val("boolean", f"literal {str(node).upper()}", lit=node)
        if isinstance(node, int):
            return _Val("integer", f"literal {node}", lit=node)
        if isinstance(node, float):
            return _Val("number", f"literal {node!r}", lit=node)
        if isinstance(node, str):
            return _Val("string", f"literal {_short(node)}", lit=node)
        if isinstance(node, datetime):
            if node.tzinfo is None:
                raise FilterError(f"Timestamp {node.isoformat()} has no time zone; CQL2 timestamps are UTC ('Z')")
            node = node.astimezone(_UTC)
            end = _TEnd("lit", value=node)
            return _Val("datetime", f"TIMESTAMP('{node.isoformat()}')", lit=node, temporal=_Temporal(end, end, False))
        if isinstance(node, date):
            end = _TEnd("lit", value=node)
            return _Val("date", f"DATE('{node.isoformat()}')", lit=node, temporal=_Temporal(end, end, False))
        if isinstance(node, values.Interval):
            return self._interval(node)
        if isinstance(node, (values.Geometry, values.Envelope)):
            geom = _geometry_literal(node)
            return _Val("geometry", f"geometry literal {_short(geom.wkt)}", lit=geom)
        if type(node) in _ARITHMETIC_NODES:
            return self._arithmetic(node)
        if isinstance(node, ast.Function):
            return self._function(node)
        if isinstance(node, (ast.Predicate, ast.Condition)):
            raise FilterError(f"A condition cannot be used as a value here: {_short(node)}")
        if isinstance(node, list):
            raise FilterError("Array values are not supported")
        if isinstance(node, timedelta):
            raise FilterError("Durations are not part of CQL2 and are not supported")
        raise FilterError(f"Unsupported value {_short(node)}")

    def _property(self, name: str) -> _Val:
        is_alias = name in _GEOMETRY_ALIASES and self.queryables.get(name, "geometry") == "geometry"
        if name == self.geometry_name or is_alias:
            self.uses_geometry = True
            return _Val("geometry", "the feature geometry", arr=_Ctx.feature_geometries, main_geometry=True)
        if name == "datetime" and ("valid_from" in self.time_fields or "datetime" in self.time_fields):
            return self._valid_time()
        qtype = self.queryables.get(name)
        if qtype is None:
            known = sorted({*self.queryables, self.geometry_name} | ({"datetime"} if self.time_fields else set()))
            raise FilterError(
                f"Unknown property '{name}'; the queryables are: {', '.join(known)}",
                property=name,
                queryables=known,
            )
        self.properties.add(name)
        desc = f"property '{name}'"
        if qtype == "geometry":

            def decode(ctx: _Ctx) -> np.ndarray:
                column = ctx.table.column(name)
                return shapely.from_wkb(column.to_numpy(zero_copy_only=False))

            return _Val("geometry", desc, arr=decode)
        if qtype in ("datetime", "date"):
            end = _TEnd("col", column=name, col_type=qtype)
            return _Val(qtype, desc, expr=pc.field(name), temporal=_Temporal(end, end, False, guards=()))
        return _Val(qtype, desc, expr=pc.field(name), column=name if qtype in _RANGED else None)

    def _valid_time(self) -> _Val:
        if "datetime" in self.time_fields:  # an instant column standing for the feature's time
            column = self.time_fields["datetime"]
            qtype = self.queryables.get(column, "datetime")
            self.properties.add(column)
            end = _TEnd("col", column=column, col_type=qtype)
            desc = f"datetime (column '{column}')"
            return _Val(qtype, desc, expr=pc.field(column), temporal=_Temporal(end, end, False))
        start_col, end_col = self.time_fields["valid_from"], self.time_fields["valid_to"]
        self.properties.update((start_col, end_col))
        start = _TEnd("col", column=start_col, col_type=self.queryables.get(start_col, "datetime"), sign=-1)
        end = _TEnd("col", column=end_col, col_type=self.queryables.get(end_col, "datetime"), sign=1)
        return _Val("interval", f"datetime (valid time [{start_col}, {end_col}])", temporal=_Temporal(start, end, True))

    def _interval(self, node: values.Interval) -> _Val:
        guards: list[str] = []
        bounds: list[_TEnd] = []
        for bound, sign in ((node.start, -1), (node.end, 1)):
            if bound is None:
                bounds.append(_TEnd("open", sign=sign))
            elif isinstance(bound, (datetime, date)):
                bounds.append(self.value(bound).temporal.start)  # type: ignore[union-attr]
            elif isinstance(bound, ast.Attribute):
                v = self.value(bound)
                if v.temporal is None or v.temporal.is_interval:
                    raise FilterError(f"INTERVAL bounds must be timestamps or dates, but {v.desc} is {v.type}")
                end = v.temporal.start
                # the valid-time columns keep their meaning inside INTERVAL(): null = open end
                if end.column == self.time_fields.get("valid_from" if sign < 0 else "valid_to"):
                    end = _TEnd("col", column=end.column, col_type=end.col_type, sign=sign)
                else:
                    guards.append(str(end.column))
                bounds.append(end)
            else:
                raise FilterError(f"INTERVAL bounds must be timestamps, dates, '..' or properties, not {_short(bound)}")
        start, end = bounds
        if start.kind == "lit" and end.kind == "lit":
            domain = "date" if (start.is_date or end.is_date) else "datetime"
            if _lit_int(start, domain) > _lit_int(end, domain):
                raise FilterError(f"INTERVAL starts after it ends: {start.value} > {end.value}")
        desc = f"INTERVAL({_bound_desc(start)}, {_bound_desc(end)})"
        return _Val("interval", desc, temporal=_Temporal(start, end, True, tuple(guards)))

    def _function(self, node: ast.Function) -> _Val:
        name = self._check_function_name(node.name)
        args = node.arguments if isinstance(node.arguments, list) else [node.arguments]
        if len(args) != 1:
            raise FilterError(f"{name.upper()}() takes exactly one argument, got {len(args)}")
        arg = self.value(args[0])
        if arg.type != "string":
            raise FilterError(f"{name.upper()}() takes a string, but {arg.desc} is {arg.type}")
        # arrow has neither full case folding nor mark stripping: residual only
        fn = _map_strings(_STRING_FUNCTIONS[name])
        return _apply(fn, [arg], "string", f"{name.upper()}({arg.desc})", pushable=False)

    def _check_function_name(self, raw: str) -> str:
        name = str(raw).lower()
        if name in _ARRAY_FUNCTIONS:
            raise FilterError(f"Array functions ({raw.upper()}) are not supported")
        if name not in _STRING_FUNCTIONS:
            raise FilterError(f"Unknown function '{raw}'; supported functions are CASEI and ACCENTI")
        return name

    def _arithmetic(self, node: ast.Arithmetic) -> _Val:
        symbol = _ARITHMETIC_NODES[type(node)]
        a, b = self.value(node.lhs), self.value(node.rhs)
        for v in (a, b):
            if v.type not in ("integer", "number"):
                raise FilterError(f"Arithmetic '{symbol}' needs numbers, but {v.desc} is {v.type}")
        integral = a.type == b.type == "integer"
        fns: dict[str, Callable[[Any, Any], Any]] = {
            "+": pc.add,
            "-": pc.subtract,
            "*": pc.multiply,
            "/": _div_float,
            "div": _div_trunc(integral),
            "%": _mod(integral),
            "^": _pow,
        }
        result_type = "integer" if integral and symbol in ("+", "-", "*", "div", "%") else "number"
        return _apply(fns[symbol], [a, b], result_type, f"({a.desc} {symbol} {b.desc})")

    # ---- spatial --------------------------------------------------------

    def _spatial(self, node: ast.SpatialComparisonPredicate) -> _Val:
        name, predicate = _SPATIAL[type(node)]
        a, b = self.value(node.lhs), self.value(node.rhs)
        for v in (a, b):
            if v.type != "geometry":
                raise FilterError(f"{name} compares geometries, but {v.desc} is {v.type}")
        desc = f"{name}({a.desc}, {b.desc})"
        if a.is_lit and b.is_lit:
            return _Val("boolean", desc, lit=bool(predicate(a.lit, b.lit)))
        if predicate is shapely.intersects and b.is_lit:
            a, b = b, a  # literal first so that its prepared form does the work
        for v in (a, b):
            if v.is_lit:
                shapely.prepare(v.lit)
        left, right = a, b

        def run(ctx: _Ctx) -> pa.Array:
            ga, gb = ctx.value(left), ctx.value(right)
            result = np.asarray(predicate(ga, gb), dtype=bool)
            missing = np.asarray(shapely.is_missing(ga)) | np.asarray(shapely.is_missing(gb))
            # a literal against a literal never gets here, so one side has n rows
            return pa.array(np.broadcast_to(result, (ctx.n,)).copy(), mask=np.broadcast_to(missing, (ctx.n,)).copy())

        hint, bbox = None, None
        literal = a if a.is_lit else b
        feature = b if a.is_lit else a
        # every relation but S_DISJOINT implies that the two geometries intersect
        if literal.is_lit and feature.main_geometry and predicate is not shapely.disjoint:
            bbox = _bbox_of(literal.lit)
            if bbox is not None and self.bbox_fields is not None:
                xmin, ymin, xmax, ymax = (pc.field(*((c,) if isinstance(c, str) else c)) for c in self.bbox_fields)
                hint = _conjoin([xmin <= bbox[2], xmax >= bbox[0], ymin <= bbox[3], ymax >= bbox[1]])
        return _Val("boolean", desc, arr=run, hint=hint, bbox=bbox)

    # ---- temporal -------------------------------------------------------

    def _temporal(self, node: ast.TemporalPredicate) -> _Val:
        name, intervals_only, dnf = _TEMPORAL[type(node)]
        operands = []
        for child in (node.lhs, node.rhs):
            v = self.value(child)
            if v.temporal is None:
                raise FilterError(f"{name} compares instants or intervals, but {v.desc} is {v.type}")
            if intervals_only and not v.temporal.is_interval:
                raise FilterError(f"{name} is defined for intervals only, but {v.desc} is an instant")
            operands.append(v.temporal)
        a, b = operands
        domain = self._domain(a, b)
        terms = {
            "as": self._tterm(a.start, domain),
            "ae": self._tterm(a.end, domain),
            "bs": self._tterm(b.start, domain),
            "be": self._tterm(b.end, domain),
        }
        result: _Val | None = None
        for conjunction in dnf:
            term: _Val | None = None
            for left, op, right in conjunction:
                atom = self._tcmp(terms[left], op, terms[right])
                term = atom if term is None else self._and(term, atom)
            assert term is not None
            result = term if result is None else self._or(result, term)
        assert result is not None
        guards = a.guards + b.guards
        if guards and not result.is_lit and result.expr is not None:
            # CQL2: a NULL operand makes the predicate NULL, even if one bound would decide it
            unknown = pc.is_null(pc.field(guards[0]))
            for column in guards[1:]:
                unknown = pc.or_kleene(unknown, pc.is_null(pc.field(column)))
            expr = pc.if_else(unknown, pa.scalar(None, pa.bool_()), result.expr)
            result = _Val("boolean", result.desc, expr=expr)
        return _Val("boolean", f"{name}(...)", lit=result.lit, expr=result.expr, arr=result.arr)

    @staticmethod
    def _domain(a: _Temporal, b: _Temporal) -> str:
        # A date meeting a timestamp is compared at day resolution (the timestamp's
        # UTC calendar date): CQL2 leaves such casts to the implementation.
        ends = (a.start, a.end, b.start, b.end)
        return "date" if any(e.is_date for e in ends) else "datetime"

    def _tterm(self, end: _TEnd, domain: str) -> _Val:
        """One endpoint as a value in the comparison domain."""
        type_ = f"t:{domain}"
        if end.kind == "open":
            return _Val(type_, "..", lit=_OPEN[domain][0 if end.sign < 0 else 1])
        if end.kind == "lit":
            return _Val(type_, str(end.value), lit=_lit_int(end, domain))
        assert end.column is not None
        expr = pc.field(end.column)
        if domain == "date" and end.col_type == "datetime":
            expr = expr.cast(pa.date32())
        if end.sign:
            expr = pc.coalesce(expr, pa.scalar(_OPEN[domain][0 if end.sign < 0 else 1], _ARROW_TYPES[type_]))
        return _Val(type_, f"property '{end.column}'", expr=expr)

    def _tcmp(self, a: _Val, op: str, b: _Val) -> _Val:
        out = _apply(_COMPARE[op], [a, b], "boolean", f"{a.desc} {op} {b.desc}")
        ranges = _comparison_range(op, a, b)
        return out if ranges is None else dataclasses.replace(out, ranges=ranges)


def compile_ast(
    node: Any,
    queryables: Mapping[str, str],
    geometry_name: str = "geometry",
    time_fields: Mapping[str, str] | None = None,
    bbox_columns: bool | Sequence[FieldPath] = False,
) -> CompiledFilter:
    """Compile a pygeofilter AST; see :func:`geoplatform.cube.cql2.compile_filter`."""
    for name, qtype in queryables.items():
        if qtype not in _QUERYABLE_TYPES:
            raise ValueError(
                f"queryable {name!r} has unknown type {qtype!r}; expected one of {sorted(_QUERYABLE_TYPES)}"
            )
    fields = dict(time_fields or {})
    if set(fields) - {"datetime", "valid_from", "valid_to"}:
        raise ValueError(f"time_fields keys must be 'datetime' or 'valid_from'/'valid_to', got {sorted(fields)}")
    if ("valid_from" in fields) != ("valid_to" in fields) or ("datetime" in fields and "valid_from" in fields):
        raise ValueError("time_fields needs either both 'valid_from' and 'valid_to', or 'datetime' alone")
    bbox_fields: tuple[FieldPath, ...] | None = None
    if bbox_columns is True:
        bbox_fields = BBOX_COLUMNS
    elif bbox_columns:
        bbox_fields = tuple(bbox_columns)  # type: ignore[arg-type]
        if len(bbox_fields) != 4:
            raise ValueError("bbox_columns needs four fields: xmin, ymin, xmax, ymax")
    compiler = _Compiler(queryables, geometry_name, fields, bbox_fields)

    conjuncts: list[Any] = []
    stack = [node]
    while stack:  # top-level ANDs split into independent parts
        item = stack.pop()
        if isinstance(item, ast.And):
            stack.extend((item.rhs, item.lhs))
        else:
            conjuncts.append(item)
    try:
        compiled = [compiler.cond(c) for c in conjuncts]
    except RecursionError as exc:
        raise FilterError("The filter is nested too deeply") from exc

    ranges: Mapping[str, tuple[Any, Any]] | None = {}
    for v in compiled:
        ranges = _intersect_ranges(ranges, v.ranges)
    pushed: list[pc.Expression | None] = []
    residual_parts: list[_Val] = []
    bounds = []
    for v in compiled:
        if v.bbox is not None:
            bounds.append(v.bbox)
        if v.is_lit:
            if v.lit is not True:  # FALSE or NULL: nothing can match
                pushed.append(pc.scalar(False))
        elif v.expr is not None:
            pushed.append(v.expr)
        else:
            pushed.append(v.hint)
            residual_parts.append(v)

    residual: Residual | None = None
    if residual_parts:
        parts = tuple(residual_parts)

        def residual(table: pa.Table, geoms: np.ndarray | None) -> np.ndarray:
            """Evaluate the non-pushable conditions of the filter (nulls count as no match)."""
            ctx = _Ctx(table, geoms)
            mask = np.ones(ctx.n, dtype=bool)
            for part in parts:
                mask &= _truthy(ctx.value(part), ctx.n)
            return mask

    equals: list[tuple[str, Any]] | None = []
    for c in conjuncts:
        pair = _column_equals(c, queryables)
        if pair is None:
            equals = None
            break
        equals.append(pair)  # type: ignore[union-attr]
    return CompiledFilter(
        equals=tuple(equals) if equals and residual is None else None,
        arrow=_conjoin(pushed),
        residual=residual,
        properties=frozenset(compiler.properties),
        spatial_bbox=min(bounds, key=_bbox_area) if bounds else None,
        uses_geometry=compiler.uses_geometry and residual is not None,
        ranges=dict(ranges or {}),
    )


# --------------------------------------------------------------------------
# Value ranges (for readers that skip row groups by column statistics)
# --------------------------------------------------------------------------

#: Queryable types whose values order as Parquet statistics order them.
_RANGED = ("string", "integer", "number")
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}


def _column_equals(node: Any, queryables: Mapping[str, str]) -> tuple[str, Any] | None:
    """``property = literal`` (either way round) on a string or number queryable, else None."""
    if type(node) is not ast.Equal:
        return None
    a, b = node.lhs, node.rhs
    if isinstance(b, ast.Attribute):
        a, b = b, a
    if not isinstance(a, ast.Attribute) or isinstance(b, bool) or not isinstance(b, (str, int, float)):
        return None
    kind = queryables.get(str(a.name))
    if kind not in _RANGED or isinstance(b, str) != (kind == "string") or b != b:
        return None
    if isinstance(b, int) and not -2**63 <= b < 2**63:
        return None
    return str(a.name), b


def _comparison_range(op: str, a: _Val, b: _Val) -> dict[str, tuple[Any, Any]] | None:
    """``column op literal`` (either way round) as the range the column's value lies in."""
    if b.column is not None and a.is_lit:
        a, b, op = b, a, _FLIPPED.get(op, op)
    if a.column is None or not b.is_lit or op not in _FLIPPED:
        return None
    lit = b.lit
    if isinstance(lit, bool) or not isinstance(lit, (str, int, float)) or lit != lit:  # NaN bounds nothing
        return None
    if isinstance(lit, str) != (a.type == "string"):
        return None
    if op == "=":
        return {a.column: (lit, lit)}
    return {a.column: (lit, None) if op in (">", ">=") else (None, lit)}


def _intersect_ranges(a: Mapping[str, tuple[Any, Any]] | None,
                      b: Mapping[str, tuple[Any, Any]] | None) -> dict[str, tuple[Any, Any]] | None:
    """Both conditions hold: each column lies in both its ranges."""
    if not a or not b:
        return dict(a or b or {}) or None
    out = dict(a)
    for col, (lo, hi) in b.items():
        if col in out:
            lo0, hi0 = out[col]
            lo = lo0 if lo is None else lo if lo0 is None else max(lo0, lo)
            hi = hi0 if hi is None else hi if hi0 is None else min(hi0, hi)
        out[col] = (lo, hi)
    return out


def _union_ranges(a: Mapping[str, tuple[Any, Any]] | None,
                  b: Mapping[str, tuple[Any, Any]] | None) -> dict[str, tuple[Any, Any]] | None:
    """Either condition holds: a column is bounded only where both bound it, by the wider range."""
    if not a or not b:
        return None
    out = {}
    for col in a.keys() & b.keys():
        (lo0, hi0), (lo1, hi1) = a[col], b[col]
        lo = None if lo0 is None or lo1 is None else min(lo0, lo1)
        hi = None if hi0 is None or hi1 is None else max(hi0, hi1)
        if lo is not None or hi is not None:
            out[col] = (lo, hi)
    return out or None
