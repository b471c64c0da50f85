"""Sensor series: point observations read as a (station, time) cube."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely

import geoplatform as gp
from geoplatform.errors import InvalidParameterValue

STATIONS = {"S1": (116.40, 39.90), "S2": (116.30, 40.00), "S3": (116.50, 39.80)}


def observations(hours: int = 6, skip: tuple[str, int] | None = ("S2", 3)) -> gpd.GeoDataFrame:
    rows = []
    t0 = pd.Timestamp("2025-03-01T00:00:00Z")
    for k, (sid, (lon, lat)) in enumerate(sorted(STATIONS.items())):
        for h in range(hours):
            if skip == (sid, h):
                continue  # a missing hour
            rows.append({"obs_id": f"{sid}-{h}", "station": sid, "observed_at": t0 + pd.Timedelta(hours=h),
                         "pm25": 10.0 * (k + 1) + h, "temp": -2.0 + h, "geometry": shapely.Point(lon, lat)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


@pytest.fixture()
def air(tmp_path) -> gp.Cube:
    c = gp.open_cube(tmp_path / "store")
    c.create_dataset(gp.DatasetSpec(name="air", fid="obs_id", geometry_type="Point", valid_from="observed_at",
                                    instant=True, storage_crs="EPSG:4326"))
    c.ingest("air", observations())
    return c


def test_station_by_time(air: gp.Cube) -> None:
    s = air.series("air", station="station")
    assert s.pm25.dims == ("station", "time") and s.pm25.shape == (3, 6)
    assert list(s.station.values) == ["S1", "S2", "S3"]
    assert s.pm25.sel(station="S3").values.tolist() == [30.0 + h for h in range(6)]
    assert np.isnan(s.pm25.sel(station="S2").values[3])  # the missing hour
    assert s.temp.sel(station="S1").values[5] == 3.0
    np.testing.assert_allclose(s.x.values, [116.40, 116.30, 116.50])
    np.testing.assert_allclose(s.y.values, [39.90, 40.00, 39.80])
    assert str(s.time.values[0])[:19] == "2025-03-01T00:00:00" and s.attrs["crs"] == "EPSG:4326"


def test_window_resampling_and_variables(air: gp.Cube) -> None:
    s = air.series("air", station="station", variables=["pm25"], freq="3h", agg="mean",
                   datetime="2025-03-01T00:00:00Z/2025-03-01T05:59:59Z")
    assert list(s.data_vars) == ["pm25"] and s.sizes["time"] == 2
    assert s.pm25.sel(station="S1").values.tolist() == [11.0, 14.0]
    assert s.pm25.sel(station="S2").values.tolist() == [21.0, 24.5]  # hour 3 missing: mean of 4 and 5
    n = air.series("air", station="station", variables=["pm25"], freq="1D", agg="count")
    assert n.pm25.values[:, 0].tolist() == [6.0, 5.0, 6.0]
    early = air.series("air", station="station", datetime="2025-03-01T00:00:00Z/2025-03-01T01:00:00Z")
    assert early.sizes["time"] == 2


def test_positions_from_a_station_dataset(air: gp.Cube) -> None:
    air.create_dataset(gp.DatasetSpec(name="stations", fid="code", geometry_type="Point", storage_crs="EPSG:4326"))
    st = gpd.GeoDataFrame({"code": ["S1", "S2", "S3", "S4"]},
                          geometry=[shapely.Point(*STATIONS[k]) for k in ("S1", "S2", "S3")]
                          + [shapely.Point(116.6, 39.7)], crs="EPSG:4326")
    air.ingest("stations", st)
    s = air.series("air", station="station", stations="stations")
    assert list(s.station.values) == ["S1", "S2", "S3", "S4"]  # an unobserved station is there, all NaN
    assert np.isnan(s.pm25.sel(station="S4").values).all()
    s2 = air.series("air", station="station", stations="stations", crs="EPSG:3857")
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(116.40, 39.90)
    assert (s2.x.values[0], s2.y.values[0]) == (pytest.approx(x, abs=0.01), pytest.approx(y, abs=0.01))


def test_bad_requests(air: gp.Cube) -> None:
    with pytest.raises(InvalidParameterValue, match="no attribute 'sensor'"):
        air.series("air", station="sensor")
    with pytest.raises(InvalidParameterValue, match="not a numeric attribute"):
        air.series("air", station="station", variables=["station"])
    with pytest.raises(InvalidParameterValue, match="agg"):
        air.series("air", station="station", agg="median")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="freq"):
        air.series("air", station="station", freq="fortnightly")


@pytest.mark.parametrize("agg", ["mean", "sum", "min", "max", "count", "first", "last"])
def test_combined_observations_agree_with_pandas(tmp_path, agg: str) -> None:
    """Several observations in a cell (a 2-hour step over readings every 20 minutes, some
    missing a value) are combined as pandas' groupby combines them: NaN skipped."""
    rng = np.random.default_rng(11)
    n = 600
    t0 = pd.Timestamp("2025-03-01T00:00:00Z")
    when = t0 + pd.to_timedelta(rng.integers(0, 72, n) * 20, unit="min")
    sid = rng.choice(["A", "B", "C", "D"], n)
    val = rng.normal(50, 10, n).round(3)
    val[rng.random(n) < 0.2] = np.nan
    val[(sid == "D") & (when < t0 + pd.Timedelta(hours=4))] = np.nan  # cells with no value at all
    obs = gpd.GeoDataFrame({"obs_id": [f"o{i}" for i in range(n)], "station": sid, "observed_at": when, "pm25": val},
                           geometry=[shapely.Point(116 + ord(s) / 100, 40) for s in sid], crs="EPSG:4326")
    c = gp.open_cube(tmp_path / "store")
    c.create_dataset(gp.DatasetSpec(name="air", fid="obs_id", geometry_type="Point", valid_from="observed_at",
                                    instant=True, storage_crs="EPSG:4326"))
    c.ingest("air", obs)
    got = c.series("air", station="station", freq="2h", agg=agg)  # type: ignore[arg-type]
    # pandas on the rows in the order the store returns them ("first" and "last" depend on it)
    rows = c.query("air", output="arrow", properties=["station", "pm25"]).to_pandas()
    rows["time"] = rows["valid_from"].dt.floor("2h")
    want = getattr(rows.groupby(["station", "time"])["pm25"], agg)().unstack()
    want.columns = want.columns.tz_convert(None)
    np.testing.assert_array_equal(got.station.values, want.index.to_numpy())
    np.testing.assert_array_equal(got.time.values, want.columns.to_numpy().astype("datetime64[us]"))
    np.testing.assert_allclose(got.pm25.values, want.to_numpy(float), rtol=1e-12, equal_nan=True)
