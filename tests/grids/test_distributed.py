"""With a dask.distributed scheduler configured, grid reads and vector-to-grid
aggregation run on the cluster's worker processes and give the same results."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr

import geoplatform as gp
from geoplatform.settings import Settings

distributed = pytest.importorskip("distributed")


def build(store: Path) -> None:
    rng = np.random.default_rng(5)
    with gp.open_cube(store) as cube:
        t = pd.date_range("2025-01-01", periods=40, freq="D")
        x = 116.0 + (np.arange(50) + 0.5) * 0.01
        y = 40.0 - (np.arange(30) + 0.5) * 0.01
        cube.create_grid({"name": "air", "series_chunk": [16, 16, 16], "map_chunk": [16, 16]})
        cube.ingest_grid("air", xr.Dataset({"pm25": (("time", "lat", "lon"), rng.random((40, 30, 50)))},
                                           coords={"time": t, "lat": y, "lon": x}))
        n = 5000
        cube.create_dataset(gp.DatasetSpec(name="incidents", fid="incident_id", geometry_type="Point",
                                           valid_from="reported_at", instant=True, storage_crs="EPSG:4326"))
        cube.ingest("incidents", gpd.GeoDataFrame(
            {"incident_id": np.arange(n), "reported_at": pd.Timestamp("2025-01-01", tz="UTC")
             + pd.to_timedelta(rng.integers(0, 40 * 86400, n), unit="s"), "severity": rng.integers(1, 6, n)},
            geometry=shapely.points(rng.uniform(116.0, 116.5, n), rng.uniform(39.7, 40.0, n)), crs="EPSG:4326"))


def test_cluster_gives_the_same_results(tmp_path: Path) -> None:
    store = tmp_path / "store"
    build(store)
    with gp.open_cube(store) as local:
        assert local.client is None
        grid_mean = local.grid("air", layout="series").pm25.mean("time").values
        counts = local.to_xarray("incidents", resolution=0.05, freq="7D", chunks=True).values
        sums = local.to_xarray("incidents", resolution=0.05, freq="7D", agg="sum", variable="severity").values
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with gp.open_cube(store, settings=Settings(dask_scheduler=cluster.scheduler_address)) as cube:
            client = cube.client
            assert client is not None and len(client.scheduler_info()["workers"]) == 2
            with distributed.get_task_stream(client) as ts:
                g = cube.grid("air", layout="series").pm25.mean("time").values
                c = cube.to_xarray("incidents", resolution=0.05, freq="7D").values
                s = cube.to_xarray("incidents", resolution=0.05, freq="7D", agg="sum", variable="severity").values
            ran_on = {task["worker"] for task in ts.data}
            assert ran_on and ran_on <= set(client.scheduler_info()["workers"])  # on the cluster's workers
    np.testing.assert_allclose(g, grid_mean)
    np.testing.assert_array_equal(c, counts)
    np.testing.assert_array_equal(s, sums)
    assert counts.sum() == 5000


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    from geoplatform.errors import StoreError

    with gp.open_cube(tmp_path / "s", settings=Settings(dask_scheduler="tcp://127.0.0.1:9")) as cube:
        with pytest.raises(StoreError, match="cannot reach the dask scheduler"):
            cube.grid("nothing")
