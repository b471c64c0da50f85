"""Personal data: small-count suppression, and what the catalog and layers may declare."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pydantic
import pytest

from geoplatform.access.disclosure import suppress, suppress_by_count
from geoplatform.access.policy import Principal, can_read, can_write
from geoplatform.catalog.layers import AggregateLayerConfig
from geoplatform.cube.model import DatasetSpec
from geoplatform.errors import CatalogError
from geoplatform.ogc import edr_aggregate as EA


def _shown(a: np.ndarray) -> np.ndarray:
    return a[~np.isnan(a)]


@pytest.mark.parametrize("total, classes, want_total, want", [
    (9, (5, 4), None, (None, None)),       # a small cell: withheld whole
    (10, (10, 0), 10, (10, 0)),            # nothing small: all shown, the empty class too
    (10, (8, 2), 10, (None, None)),        # both classes small
    (15, (12, 3, 0), 15, (None, None, 0)),  # one small class: a second one withheld with it
    (40, (20, 15, 5), 40, (20, None, None)),  # the smallest other counted class is the second
    (0, (0, 0), 0, (0, 0)),                # an empty cell says only that nobody is there
    (12, (3,), None, (None,)),             # a class alone that the total would give away: the total goes
])
def test_suppression_rules(total: int, classes: tuple[int, ...], want_total: int | None,
                           want: tuple[int | None, ...]) -> None:
    t, c = suppress(np.array([float(total)]), {f"c{i}": np.array([float(v)]) for i, v in enumerate(classes)}, 10)
    got = [None if np.isnan(c[f"c{i}"][0]) else c[f"c{i}"][0] for i in range(len(classes))]
    assert (None if np.isnan(t[0]) else t[0]) == want_total
    assert got == list(want)


def test_suppressed_tables_give_nothing_small_away() -> None:
    """On random tables: no shown count is small, no withheld class can be recovered by
    subtraction from the shown total and classes, and what is shown is the truth."""
    rng = np.random.default_rng(5)
    k = 10
    cls = rng.poisson(rng.choice([1.5, 6, 30], size=(4, 3000)), size=(4, 3000)).astype(float)
    total = cls.sum(axis=0)
    t, c = suppress(total, {str(i): cls[i] for i in range(4)}, k)
    got = np.stack([c[str(i)] for i in range(4)])
    for a in (t, got):
        s = _shown(a)
        assert not ((s > 0) & (s < k)).any()
    assert np.array_equal(_shown(t), total[~np.isnan(t)])
    assert np.array_equal(got[~np.isnan(got)], cls[~np.isnan(got)])
    withheld = np.isnan(got).sum(axis=0)
    shown_total = ~np.isnan(t)
    # where the total is shown, classes are withheld two or more at a time, never one alone
    assert not (shown_total & (withheld == 1)).any()
    # every small count is withheld
    assert np.isnan(got[(cls > 0) & (cls < k)]).all()
    assert np.isnan(t[(total > 0) & (total < k)]).all()
    assert 0 < np.isnan(t).sum() < len(t) and (shown_total & (withheld >= 2)).any()


def test_sums_and_means_are_withheld_where_the_count_is_small() -> None:
    out = suppress_by_count(np.array([3.5, 7.0, np.nan]), np.array([12, 4, 0]), 10)
    assert out[0] == 3.5 and np.isnan(out[1:]).all()
    with pytest.raises(ValueError, match="min_count"):
        suppress(np.zeros(2), {}, 0)


def _persons(**kw: object) -> DatasetSpec:
    base = dict(name="residents", department="public_security", open_level="restricted",
                personal="natural_person", geometry_type="Point",
                schema=[{"name": "age_band", "type": "string", "enum": ["0-14", "15-64", "65+"]},
                        {"name": "age", "type": "integer"}])
    return DatasetSpec(**{**base, **kw})


def test_personal_datasets_are_restricted_and_owned() -> None:
    with pytest.raises(pydantic.ValidationError, match="personal data .*must be 'restricted'"):
        _persons(open_level="public")
    with pytest.raises(pydantic.ValidationError, match="owner department"):
        _persons(department=None)
    spec = _persons()
    police, other = Principal("guo", {"public_security": "reader"}), Principal("wu", {"water": "admin"})
    server = Principal("server", superuser=True)
    ops = Principal("ops", {"*": "admin"})
    assert can_read(police, spec) and not can_write(police, spec)
    assert can_write(Principal("li", {"public_security": "editor"}), spec)
    for p in (other, server, ops):  # not the server's own key, not the platform's operators
        assert not can_read(p, spec) and not can_write(p, spec)


def _agg(**kw: object) -> AggregateLayerConfig:
    return AggregateLayerConfig(**{"id": "residents-by-age", "aggregate": "residents", "resolution": 250, **kw})


def test_aggregate_layers_of_personal_data() -> None:
    spec = _persons()
    # by default, as restricted as the register, with the default minimum count
    assert EA.check_layer(_agg(), spec) == (spec,)
    assert EA.min_count(_agg(), spec) == 10
    assert EA.min_count(_agg(min_count=25), spec) == 25
    entry = EA.check_layer(_agg(open_level="public", by="age_band"), spec)[0]
    assert (entry.department, entry.open_level, entry.personal) == ("public_security", "public", None)
    assert [p for p, _ in EA.classes(_agg(by="age_band"), spec)] == ["count_0_14", "count_15_64", "count_65plus"]
    with pytest.raises(CatalogError, match="would show one record's value"):
        EA.check_layer(_agg(agg="max", variable="age"), spec)
    with pytest.raises(CatalogError, match="declared classes"):
        EA.check_layer(_agg(by="age"), spec)
    with pytest.raises(pydantic.ValidationError, match="needs agg 'count'"):
        _agg(by="age_band", agg="mean", variable="age")
    with pytest.raises(pydantic.ValidationError):
        _agg(min_count=1)


def test_an_aggregate_opened_wider_than_its_dataset_needs_min_count() -> None:
    pipes = DatasetSpec(name="pipes", department="water", open_level="restricted")
    with pytest.raises(CatalogError, match="needs min_count"):
        EA.check_layer(_agg(aggregate="pipes", open_level="public"), pipes)
    shared = DatasetSpec(name="pipes", department="water", open_level="shared", shared_with=("planning",))
    with pytest.raises(CatalogError, match="needs min_count"):
        EA.check_layer(_agg(aggregate="pipes", open_level="shared", shared_with=("housing",)), shared)
    # as open as the dataset, or narrower: no suppression needed
    assert EA.check_layer(_agg(aggregate="pipes", open_level="restricted"), pipes)[0].open_level == "restricted"
    assert EA.check_layer(_agg(aggregate="pipes", open_level="public", min_count=5), pipes)[0].open_level == "public"
    entry = SimpleNamespace(department="water", open_level="public", shared_with=(), personal=None)
    assert can_read(Principal(), entry)
