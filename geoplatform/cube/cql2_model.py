"""What the CQL2 compiler in :mod:`geoplatform.cube.cql2_eval` compiles with and into.

None of it knows a dataset's queryables; that is the compiler's part. Here are

* the AST nodes CQL2 1.0 needs that pygeofilter 0.4 lacks (the parsers in
  :mod:`geoplatform.cube.cql2` produce them);
* the result, :class:`CompiledFilter`, and :func:`evaluate`, which applies it;
* the value model, string folding (``CASEI``/``ACCENTI``) and arithmetic;
* the tables from comparison, arithmetic, spatial and temporal AST nodes to
  their operators, and the conversion of temporal and geometry literals.

Every value is modelled in one of three modes: a Python literal (constant
folded at compile time), an arrow expression (pushable), or an evaluator over
the materialised table (residual). Operators are written once against
``pyarrow.compute`` functions, which accept expressions, arrays and scalars
alike, so the three modes share one implementation and one set of semantics.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import shapely
import shapely.errors
import shapely.geometry
from pygeofilter import ast, values

from geoplatform.errors import FilterError

Residual = Callable[[pa.Table, "np.ndarray | None"], np.ndarray]
"""``residual(table, geoms) -> mask``: the part of a filter evaluated after reading."""

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DATE = date(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
# Open interval ends ('..', or a null valid_to) become the extreme values of the
# storage type, so that one comparison kernel serves bounded and open ends alike.
_OPEN = {"datetime": (-(2**63), 2**63 - 1), "date": (-(2**31), 2**31 - 1)}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    # temporal literals are carried as integers in the unit of their domain
    "t:datetime": pa.timestamp("us", tz="UTC"),
    "t:date": pa.date32(),
}


# --------------------------------------------------------------------------
# AST nodes pygeofilter 0.4 lacks (the parsers in cql2.py produce them)
# --------------------------------------------------------------------------


class ExtraOp(Enum):
    """Operators of CQL2 1.0 that have no pygeofilter 0.4 AST node."""

    T_INTERSECTS = "T_INTERSECTS"
    MOD = "%"
    INTDIV = "div"
    POW = "^"


@dataclass
class TimeIntersects(ast.TemporalPredicate):
    """``T_INTERSECTS``; pygeofilter 0.4 maps it onto ``T_OVERLAPS``, which differs."""

    op: ClassVar[ExtraOp] = ExtraOp.T_INTERSECTS  # type: ignore[assignment]


@dataclass
class Mod(ast.Arithmetic):
    """The ``%`` operator (remainder, sign of the dividend)."""

    op: ClassVar[ExtraOp] = ExtraOp.MOD  # type: ignore[assignment]


@dataclass
class IntDiv(ast.Arithmetic):
    """The ``div`` operator (division truncated toward zero)."""

    op: ClassVar[ExtraOp] = ExtraOp.INTDIV  # type: ignore[assignment]


@dataclass
class Pow(ast.Arithmetic):
    """The ``^`` operator (power, always a floating-point result)."""

    op: ClassVar[ExtraOp] = ExtraOp.POW  # type: ignore[assignment]


# --------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: Expression.__eq__ builds an expression
class CompiledFilter:
    """A CQL2 filter split into what a reader pushes down and what it evaluates after.

    A row matches when ``arrow`` is true (null counts as false) and ``residual``
    returns true for it. ``arrow`` may contain a superset pre-filter (bbox
    columns) whose exact counterpart lives in ``residual``; applying only
    ``arrow`` is therefore never enough when ``residual`` is set.
    """

    arrow: pc.Expression | None
    """Pushdown part over attribute columns; ``None`` if nothing is pushable."""
    residual: Residual | None
    """``residual(table, geoms) -> numpy bool mask`` for the rest; ``None`` if nothing remains."""
    properties: frozenset[str]
    """Table columns the filter reads (for ``datetime``: the valid-time columns)."""
    spatial_bbox: tuple[float, float, float, float] | None
    """A box every matching feature's geometry intersects, if one can be derived."""
    uses_geometry: bool = False
    """Whether ``residual`` needs the geometry array."""
    equals: tuple[tuple[str, Any], ...] | None = None
    """When the whole filter is ``column = literal`` conditions joined by AND: those pairs
    (a reader may test them with plain comparisons instead of evaluating ``arrow``)."""
    ranges: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    """For some columns, a closed value range (``None``: unbounded) that every
    matching row's value lies in: a reader may skip a row group whose column
    statistics fall outside it."""


def evaluate(table: pa.Table, geoms: np.ndarray | None, compiled: CompiledFilter) -> np.ndarray:
    """Apply both parts of ``compiled`` to ``table`` (and its geometries); return the row mask."""
    ctx = _Ctx(table, geoms)
    mask = np.ones(ctx.n, dtype=bool)
    if compiled.arrow is not None:
        mask &= _truthy(ctx.eval_expr(compiled.arrow), ctx.n)
    if compiled.residual is not None:
        mask &= compiled.residual(table, geoms)
    return mask


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------

_NOLIT: Any = object()


@dataclass(frozen=True)
class _TEnd:
    """One end of a temporal value: a literal, a column or an open end."""

    kind: Literal["lit", "col", "open"]
    value: datetime | date | None = None
    column: str | None = None
    col_type: str | None = None
    sign: int = 0  # for "open": -1 start, +1 end; for "col": which open end a null means, 0 = unknown

    @property
    def is_date(self) -> bool:
        """Whether this end has day granularity."""
        if self.kind == "lit":
            return not isinstance(self.value, datetime)
        return self.kind == "col" and self.col_type == "date"


@dataclass(frozen=True)
class _Temporal:
    """An instant (start is end) or an interval, with the columns whose null makes it NULL."""

    start: _TEnd
    end: _TEnd
    is_interval: bool
    guards: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class _Val:
    """A compiled value or condition in one of three modes (see module docstring)."""

    type: str
    desc: str
    lit: Any = _NOLIT
    expr: pc.Expression | None = None
    arr: Callable[[_Ctx], Any] | None = None
    temporal: _Temporal | None = None
    main_geometry: bool = False
    # conditions only: an arrow expression implied by the condition, and a bbox bound
    hint: pc.Expression | None = None
    bbox: tuple[float, float, float, float] | None = None
    #: values only: the attribute column this value is, as is (for value ranges)
    column: str | None = None
    #: conditions only: for some columns, a closed range (None: unbounded) that holds
    #: the column's value in every row where the condition is true
    ranges: Mapping[str, tuple[Any, Any]] | None = None

    @property
    def is_lit(self) -> bool:
        """Whether the value is a compile-time constant."""
        return self.lit is not _NOLIT


def _scalar(v: _Val) -> pa.Scalar:
    if isinstance(v.lit, pa.Scalar):
        return v.lit
    if isinstance(v.lit, int) and not isinstance(v.lit, bool) and not -2**63 <= v.lit < 2**63:
        # CQL2 numbers have no range; one beyond int64 compares as a double
        return pa.scalar(float(v.lit), type=pa.float64())
    return pa.scalar(v.lit, type=_ARROW_TYPES.get(v.type))


def _to_py(out: Any) -> Any:
    return out.as_py() if isinstance(out, pa.Scalar) else out


def _apply(fn: Callable[..., Any], args: Sequence[_Val], type_: str, desc: str, pushable: bool = True) -> _Val:
    """Apply a function in the weakest mode its arguments allow.

    ``fn`` takes and returns arrow scalars/arrays and, if ``pushable``, also
    arrow expressions.
    """
    if all(a.is_lit for a in args):
        try:
            return _Val(type_, desc, lit=_to_py(fn(*[_scalar(a) for a in args])))
        except (pa.ArrowException, OverflowError, ValueError) as exc:
            raise FilterError(f"Cannot evaluate {desc}: {exc}") from exc
    if pushable and all(a.is_lit or a.expr is not None for a in args):
        # literals become expression literals: pyarrow only builds an expression
        # when its first argument already is one
        return _Val(type_, desc, expr=fn(*[a.expr if a.expr is not None else pc.scalar(_scalar(a)) for a in args]))

    def run(ctx: _Ctx) -> Any:
        return fn(*[ctx.value(a) for a in args])

    return _Val(type_, desc, arr=run)


def _truthy(result: Any, n: int) -> np.ndarray:
    """Turn a three-valued arrow boolean (array or scalar) into a numpy mask; unknown -> False."""
    if isinstance(result, pa.Scalar):
        return np.full(n, result.as_py() is True)
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


class _Ctx:
    """Per-evaluation state: the table read, its geometries and its row count."""

    def __init__(self, table: pa.Table, geoms: np.ndarray | None) -> None:
        self.table = table
        self.geoms = geoms
        # a reader that needs no attribute column may pass an empty table
        self.n = len(geoms) if (table.num_columns == 0 and geoms is not None) else table.num_rows
        if geoms is not None and len(geoms) != self.n:
            raise ValueError(f"{len(geoms)} geometries for a table of {self.n} rows")

    def eval_expr(self, expr: pc.Expression) -> pa.Array:
        """Evaluate an arrow expression over the table."""
        table = self.table
        if table.num_columns == 0:
            table = pa.table({"__rows": pa.nulls(self.n)})
        col = ds.dataset(table).to_table(columns={"v": expr}).column("v")
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()

    def value(self, v: _Val) -> Any:
        """Materialise a value: arrow scalar, arrow array, or numpy array of geometries."""
        if v.is_lit:
            return v.lit if v.type == "geometry" else _scalar(v)
        if v.expr is not None:
            return self.eval_expr(v.expr)
        assert v.arr is not None
        return v.arr(self)

    def feature_geometries(self) -> np.ndarray:
        """The geometry array, which the caller must supply when the filter uses it."""
        if self.geoms is None:
            raise ValueError("this filter uses the feature geometry; pass the geometry array")
        return np.asarray(self.geoms, dtype=object)


# --------------------------------------------------------------------------
# String folding (CASEI / ACCENTI)
# --------------------------------------------------------------------------


def casei(text: str) -> str:
    """CQL2 ``CASEI``: Unicode full case folding, compared canonically.

    ``NFC(casefold(NFD(s)))`` is the canonical caseless-match key of Unicode
    ch. 3.13 (in NFC so that a plain literal on the other side still matches).
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


_KEEP_MARKS = frozenset("\u3099\u309a")  # Japanese (han)dakuten: stripping changes words


def accenti(text: str) -> str:
    """CQL2 ``ACCENTI``: decompose, drop non-spacing marks (but not Japanese voicing marks)."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if ch in _KEEP_MARKS or unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", kept)


_STRING_FUNCTIONS: dict[str, Callable[[str], str]] = {"casei": casei, "accenti": accenti}


def _map_strings(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    """Lift a str -> str function to arrow scalars/arrays, running it once per distinct value."""

    def run(data: Any) -> Any:
        if isinstance(data, pa.Scalar):
            return pa.scalar(None if data.as_py() is None else fn(data.as_py()), pa.string())
        if isinstance(data, pa.ChunkedArray):
            data = data.combine_chunks()
        if not pa.types.is_dictionary(data.type):
            data = pc.dictionary_encode(data)
        mapped = pa.array([None if s is None else fn(s) for s in data.dictionary.to_pylist()], pa.string())
        return mapped.take(data.indices)

    return run


# --------------------------------------------------------------------------
# Arithmetic helpers (work on expressions, arrays and scalars)
# --------------------------------------------------------------------------


def _cast(x: Any, to: pa.DataType) -> Any:
    return x.cast(to) if isinstance(x, pc.Expression) else pc.cast(x, to)


def _nonzero(x: Any, to: pa.DataType) -> Any:
    # division by zero yields NULL (no match) rather than aborting the whole scan
    x = _cast(x, to)
    return pc.if_else(pc.equal(x, pa.scalar(0, to)), pa.scalar(None, to), x)


def _div_float(a: Any, b: Any) -> Any:
    return pc.divide(_cast(a, pa.float64()), _nonzero(b, pa.float64()))


def _div_trunc(integral: bool) -> Callable[[Any, Any], Any]:
    if integral:  # arrow's integer division truncates toward zero
        return lambda a, b: pc.divide(_cast(a, pa.int64()), _nonzero(b, pa.int64()))
    return lambda a, b: pc.trunc(_div_float(a, b))


def _mod(integral: bool) -> Callable[[Any, Any], Any]:
    div = _div_trunc(integral)
    to = pa.int64() if integral else pa.float64()
    return lambda a, b: pc.subtract(_cast(a, to), pc.multiply(_cast(b, to), div(a, b)))


def _pow(a: Any, b: Any) -> Any:
    return pc.power(_cast(a, pa.float64()), _cast(b, pa.float64()))


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": pc.equal,
    "<>": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
_COMPARISON_NODES: dict[type, str] = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}
_ARITHMETIC_NODES: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mul: "*", ast.Div: "/", Mod: "%", IntDiv: "div", Pow: "^",
}

# --------------------------------------------------------------------------
# Spatial and temporal predicate tables
# --------------------------------------------------------------------------

_SPATIAL: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.GeometryIntersects: ("S_INTERSECTS", shapely.intersects),
    ast.GeometryDisjoint: ("S_DISJOINT", shapely.disjoint),
    ast.GeometryContains: ("S_CONTAINS", shapely.contains),
    ast.GeometryWithin: ("S_WITHIN", shapely.within),
    ast.GeometryTouches: ("S_TOUCHES", shapely.touches),
    ast.GeometryCrosses: ("S_CROSSES", shapely.crosses),
    ast.GeometryOverlaps: ("S_OVERLAPS", shapely.overlaps),
    ast.GeometryEquals: ("S_EQUALS", shapely.equals),
}

# Each relation in disjunctive normal form over the endpoints: a/b = first/second
# operand, s/e = start/end. CQL2 1.0 Tables 7 and 8 (OWL-Time definitions, closed
# intervals). The flag marks the relations CQL2 defines for intervals only.
_Atom = tuple[str, str, str]
_TEMPORAL: dict[type, tuple[str, bool, list[list[_Atom]]]] = {
    ast.TimeAfter: ("T_AFTER", False, [[("as", ">", "be")]]),
    ast.TimeBefore: ("T_BEFORE", False, [[("ae", "<", "bs")]]),
    ast.TimeDisjoint: ("T_DISJOINT", False, [[("ae", "<", "bs")], [("as", ">", "be")]]),
    ast.TimeEquals: ("T_EQUALS", False, [[("as", "=", "bs"), ("ae", "=", "be")]]),
    TimeIntersects: ("T_INTERSECTS", False, [[("as", "<=", "be"), ("ae", ">=", "bs")]]),
    ast.TimeContains: ("T_CONTAINS", True, [[("as", "<", "bs"), ("ae", ">", "be")]]),
    ast.TimeDuring: ("T_DURING", True, [[("as", ">", "bs"), ("ae", "<", "be")]]),
    ast.TimeEndedBy: ("T_FINISHEDBY", True, [[("as", "<", "bs"), ("ae", "=", "be")]]),
    ast.TimeEnds: ("T_FINISHES", True, [[("as", ">", "bs"), ("ae", "=", "be")]]),
    ast.TimeMeets: ("T_MEETS", True, [[("ae", "=", "bs")]]),
    ast.TimeMetBy: ("T_METBY", True, [[("as", "=", "be")]]),
    ast.TimeOverlappedBy: ("T_OVERLAPPEDBY", True, [[("as", ">", "bs"), ("as", "<", "be"), ("ae", ">", "be")]]),
    ast.TimeOverlaps: ("T_OVERLAPS", True, [[("as", "<", "bs"), ("ae", ">", "bs"), ("ae", "<", "be")]]),
    ast.TimeBegunBy: ("T_STARTEDBY", True, [[("as", "=", "bs"), ("ae", ">", "be")]]),
    ast.TimeBegins: ("T_STARTS", True, [[("as", "=", "bs"), ("ae", "<", "be")]]),
}

_UNSUPPORTED_NODES: dict[type, str] = {
    ast.ArrayPredicate: "Array functions (A_EQUALS, A_CONTAINS, A_CONTAINEDBY, A_OVERLAPS) are not supported",
    ast.Relate: "RELATE is not part of CQL2 1.0 and is not supported",
    ast.SpatialDistancePredicate: "Distance predicates (DWITHIN, BEYOND) are not supported",
    ast.Exists: "EXISTS is not part of CQL2 1.0 and is not supported",
    ast.TimeBeforeOrDuring: "BEFORE OR DURING is not part of CQL2 1.0 and is not supported",
    ast.TimeDuringOrAfter: "DURING OR AFTER is not part of CQL2 1.0 and is not supported",
}
_ARRAY_FUNCTIONS = frozenset({"a_equals", "a_contains", "a_containedby", "a_overlaps"})


def _bbox_area(b: tuple[float, float, float, float]) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def _bbox_of(geom: Any) -> tuple[float, float, float, float] | None:
    if geom is None or shapely.is_empty(geom):
        return None
    xmin, ymin, xmax, ymax = (float(c) for c in shapely.bounds(geom))
    return (xmin, ymin, xmax, ymax)


def _conjoin(parts: Sequence[pc.Expression | None]) -> pc.Expression | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    out = present[0]
    for p in present[1:]:
        out = pc.and_kleene(out, p)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------
# Literals
# --------------------------------------------------------------------------

def _lit_int(end: _TEnd, domain: str) -> int:
    """A literal endpoint as an integer in its domain (days or microseconds since 1970)."""
    value = end.value
    assert value is not None
    if domain == "date":
        day = value.astimezone(_UTC).date() if isinstance(value, datetime) else value
        return (day - _EPOCH_DATE).days
    assert isinstance(value, datetime)  # a date forces the date domain
    return (value - _EPOCH) // _MICROSECOND


def _bound_desc(end: _TEnd) -> str:
    if end.kind == "open":
        return "'..'"
    if end.kind == "lit":
        return f"'{end.value.isoformat() if end.value is not None else ''}'"
    return str(end.column)


def _geometry_literal(node: values.Geometry | values.Envelope) -> Any:
    """A shapely geometry for a WKT/GeoJSON literal or a BBOX."""
    try:
        if isinstance(node, values.Envelope):
            xmin, xmax, ymin, ymax = (float(c) for c in (node.x1, node.x2, node.y1, node.y2))
            if ymin > ymax:
                raise ValueError(f"south edge {ymin} is north of north edge {ymax}")
            if xmin > xmax:  # CQL2: west > east means the box crosses the antimeridian
                east, west = shapely.box(xmin, ymin, 180.0, ymax), shapely.box(-180.0, ymin, xmax, ymax)
                return shapely.MultiPolygon([east, west])
            return shapely.box(xmin, ymin, xmax, ymax)
        geom = shapely.geometry.shape(node.geometry)
    except (ValueError, TypeError, KeyError, AttributeError, shapely.errors.ShapelyError) as exc:
        raise FilterError(f"Invalid geometry literal: {exc}") from exc
    if geom.is_empty:
        raise FilterError("Empty geometry literals are not supported")
    return geom
