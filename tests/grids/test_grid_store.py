"""Grids in the cube: ingest from xarray, NetCDF, Zarr and GeoTIFF stacks,
appends as snapshots, as_of, both copies, and bad input refused untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

import geoplatform as gp
from geoplatform.errors import DatasetExists, IngestError, SnapshotNotFound

NT, NY, NX = 12, 30, 40


def air(times: int = NT, start: str = "2025-01-01", seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.date_range(start, periods=times, freq="D")
    x = 116.0 + (np.arange(NX) + 0.5) * 0.01
    y = 40.0 - (np.arange(NY) + 0.5) * 0.01
    pm = rng.random((times, NY, NX), dtype=np.float32) * 200
    pm[0, 0, 0] = np.nan  # a missing cell stays missing
    return xr.Dataset({"pm25": (("time", "lat", "lon"), pm, {"units": "ug m-3", "long_name": "PM2.5"}),
                       "no2": (("time", "lat", "lon"), (pm / 2).astype(np.float32), {"units": "ug m-3"})},
                      coords={"time": t, "lat": y, "lon": x})


def test_xarray_appends_are_snapshots(cube: gp.Cube) -> None:
    src = air()
    cube.create_grid({"name": "air", "title": "Air quality"})
    s1 = cube.ingest_grid("air", src.isel(time=slice(0, 5)))
    s2 = cube.ingest_grid("air", src.isel(time=slice(5, NT)))
    assert (s1.summary["steps"], s2.summary["steps"]) == (5, NT)
    g = cube.grid("air")
    assert g.pm25.dims == ("time", "y", "x") and g.pm25.shape == (NT, NY, NX)
    assert hasattr(g.pm25.data, "dask")
    np.testing.assert_array_equal(g.pm25.values, src.pm25.values)
    np.testing.assert_array_equal(g.no2.values, src.no2.values)
    np.testing.assert_array_equal(g.time.values, src.time.values)
    np.testing.assert_allclose(g.x.values, src.lon.values)
    np.testing.assert_allclose(g.y.values, src.lat.values)
    assert g.attrs["crs"] == "OGC:CRS84" and g.pm25.attrs["units"] == "ug m-3"
    assert pyproj.CRS.from_wkt(g.spatial_ref.attrs["crs_wkt"]).equals(pyproj.CRS("OGC:CRS84"))
    # the series copy holds the same values in long chunks
    s = cube.grid("air", layout="series")
    assert s.pm25.data.chunks[0] == (NT,)
    np.testing.assert_array_equal(s.pm25.values, src.pm25.values)
    # as of the first append: its five steps only, by id or by commit time
    old = cube.grid("air", as_of=s1.id)
    assert old.sizes["time"] == 5 and old.attrs["geoplatform:snapshot"] == s1.id
    np.testing.assert_array_equal(old.pm25.values, src.pm25.values[:5])
    assert cube.grid("air", as_of=s1.committed_at).sizes["time"] == 5
    assert [s.operation for s in cube.grid_snapshots("air")] == ["create", "append", "append"]
    with pytest.raises(SnapshotNotFound):
        cube.grid("air", as_of=999)


def test_external_readers_see_cf_zarr(cube: gp.Cube, tmp_path: Path) -> None:
    cube.create_grid({"name": "air"})
    cube.ingest_grid("air", air())
    for copy in ("map", "series"):
        ds = xr.open_zarr(Path(cube.backend.location) / "grids" / "air" / f"{copy}.zarr", consolidated=False)
        assert ds.attrs["Conventions"] == "CF-1.8"
        np.testing.assert_array_equal(ds.time.values, air().time.values)
        np.testing.assert_array_equal(ds.pm25.values, air().pm25.values)
        assert ds.pm25.attrs["grid_mapping"] == "spatial_ref"


def test_netcdf_with_a_projected_grid_mapping(cube: gp.Cube, tmp_path: Path) -> None:
    crs = pyproj.CRS("EPSG:4545")
    x = 500_000 + (np.arange(NX) + 0.5) * 100.0
    y = 4_400_000 - (np.arange(NY) + 0.5) * 100.0
    data = np.arange(3 * NY * NX, dtype=np.float64).reshape(3, NY, NX)
    ds = xr.Dataset({"depth": (("time", "y", "x"), data, {"units": "m", "grid_mapping": "crs"})},
                    coords={"time": pd.date_range("2025-07-01T00:00", periods=3, freq="h"), "y": y, "x": x})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": crs.to_wkt()})
    path = tmp_path / "flood.nc"
    ds.to_netcdf(path, engine="netcdf4")
    cube.create_grid({"name": "flood"})
    cube.ingest_grid("flood", path)
    g = cube.grid("flood")
    assert g.attrs["crs"] == "EPSG:4545"
    assert g.depth.dtype == np.float64
    np.testing.assert_array_equal(g.depth.values, data)
    # the same file again adds nothing
    before = len(cube.grid_snapshots("flood"))
    cube.ingest_grid("flood", path)
    assert len(cube.grid_snapshots("flood")) == before


def test_zarr_source(cube: gp.Cube, tmp_path: Path) -> None:
    path = tmp_path / "src.zarr"
    air().to_zarr(path, zarr_format=3, consolidated=False)
    cube.create_grid({"name": "air"})
    cube.ingest_grid("air", path)
    np.testing.assert_array_equal(cube.grid("air").pm25.values, air().pm25.values)


def write_tiffs(folder: Path, n: int, *, tag: bool = True, crs: str | None = "EPSG:4545", nodata: float = -9999,
                shift: float = 0.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        p = folder / f"heat_2025{k + 1:02d}01.tif"
        arr = np.full((NY, NX), float(k), np.float32)
        arr[1, 2] = nodata
        with rasterio.open(p, "w", driver="GTiff", width=NX, height=NY, count=1, dtype="float32", crs=crs,
                           transform=from_origin(500_000 + shift, 4_400_000, 50, 50), nodata=nodata) as dst:
            dst.write(arr, 1)
            if tag:
                dst.update_tags(TIFFTAG_DATETIME=f"2025:{k + 1:02d}:01 00:00:00")
        out.append(p)
    return out


def test_geotiff_stack_times_from_tags_names_or_declared(cube: gp.Cube, tmp_path: Path) -> None:
    files = write_tiffs(tmp_path / "a", 4)
    cube.create_grid({"name": "heat"})
    cube.ingest_grid("heat", tmp_path / "a")
    g = cube.grid("heat")
    assert list(pd.DatetimeIndex(g.time.values).month) == [1, 2, 3, 4]
    assert g.attrs["crs"] == "EPSG:4545" and list(g.data_vars) == ["value"]
    assert np.isnan(g.value.values[:, 1, 2]).all()  # nodata became NaN
    assert g.value.values[3, 0, 0] == 3.0
    np.testing.assert_allclose(g.x.values[:2], [500_025.0, 500_075.0])
    np.testing.assert_allclose(g.y.values[:2], [4_399_975.0, 4_399_925.0])
    # untagged files: the time from the name, by the grid's declared pattern, or declared times
    cube.create_grid({"name": "heat2", "time_pattern": r"heat_(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)"})
    cube.ingest_grid("heat2", write_tiffs(tmp_path / "b", 3, tag=False))
    assert str(cube.grid("heat2").time.values[2])[:10] == "2025-03-01"
    cube.create_grid({"name": "heat3"})
    untagged = write_tiffs(tmp_path / "c", 2, tag=False)
    with pytest.raises(IngestError, match="no time tag"):
        cube.ingest_grid("heat3", untagged)
    cube.ingest_grid("heat3", untagged, times=["2024-06-01", "2024-06-02"])
    assert cube.grid("heat3").sizes["time"] == 2
    assert files


def test_bad_input_is_refused_and_nothing_changes(cube: gp.Cube, tmp_path: Path) -> None:
    cube.create_grid({"name": "heat"})
    cube.ingest_grid("heat", write_tiffs(tmp_path / "a", 3))
    before = cube.grid("heat").value.values.copy()
    snaps = len(cube.grid_snapshots("heat"))
    # steps not after the last one
    with pytest.raises(IngestError, match="not after the grid's last step"):
        cube.ingest_grid("heat", write_tiffs(tmp_path / "b", 2))
    # another grid
    with pytest.raises(IngestError, match="another grid"):
        cube.ingest_grid("heat", write_tiffs(tmp_path / "c", 1, shift=25.0), times=["2027-01-01"])
    # another CRS
    with pytest.raises(IngestError, match="EPSG:4546"):
        cube.ingest_grid("heat", write_tiffs(tmp_path / "d", 1, crs="EPSG:4546"), times=["2027-01-01"])
    # no CRS at all: not taken for the grid's
    with pytest.raises(IngestError, match="no CRS"):
        cube.ingest_grid("heat", write_tiffs(tmp_path / "e", 1, crs=None), times=["2026-01-01"])
    cube.ingest_grid("heat", write_tiffs(tmp_path / "e", 1, crs=None), times=["2026-01-01"], crs="EPSG:4545")
    snaps += 1
    before = np.concatenate([before, cube.grid("heat").value.values[-1:]])
    # other variables
    with pytest.raises(IngestError, match="variables"):
        cube.ingest_grid("heat", write_tiffs(tmp_path / "f", 1), times=["2027-01-01"], variables=["other"])
    # not a grid at all
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match="not a grid source"):
        cube.ingest_grid("heat", tmp_path / "x.csv")
    with pytest.raises(IngestError, match="no such file"):
        cube.ingest_grid("heat", tmp_path / "missing.nc")
    assert len(cube.grid_snapshots("heat")) == snaps
    np.testing.assert_array_equal(cube.grid("heat").value.values, before)
    # and a good append still goes through after all that
    cube.ingest_grid("heat", write_tiffs(tmp_path / "g", 1, tag=False), times=["2026-01-02"])
    assert cube.grid("heat").sizes["time"] == 5


def test_uncommitted_steps_are_never_read(cube: gp.Cube) -> None:
    import zarr

    cube.create_grid({"name": "air"})
    cube.ingest_grid("air", air(5))
    # a writer that died after writing two more steps, before its commit
    for copy in ("map", "series"):
        arr = zarr.open_array(Path(cube.backend.location) / "grids" / "air" / f"{copy}.zarr" / "pm25", mode="r+")
        arr.resize((7, NY, NX))
        arr[5:7] = -1.0
    g = cube.grid("air", layout="series")
    assert g.sizes["time"] == 5 and (np.nan_to_num(g.pm25.values) >= 0).all()
    nxt = air(3, start="2025-01-06", seed=1)
    cube.ingest_grid("air", nxt)
    for layout in ("map", "series"):
        got = cube.grid("air", layout=layout)
        assert got.sizes["time"] == 8
        np.testing.assert_array_equal(got.pm25.values[5:], nxt.pm25.values)


def test_a_first_append_that_died_leaves_nothing_in_the_way(cube: gp.Cube) -> None:
    import zarr

    cube.create_grid({"name": "air"})
    half = zarr.open_group(Path(cube.backend.location) / "grids" / "air" / "map.zarr", mode="w", zarr_format=3)
    half.attrs["left"] = "behind"  # a group without its arrays
    cube.ingest_grid("air", air(2))
    np.testing.assert_array_equal(cube.grid("air").pm25.values, air(2).pm25.values)


def test_names_are_shared_with_vector_datasets(cube: gp.Cube) -> None:
    cube.create_grid({"name": "air"})
    with pytest.raises(DatasetExists):
        cube.create_grid({"name": "air"})
    with pytest.raises(DatasetExists):
        cube.create_dataset({"name": "air"})
    cube.create_dataset({"name": "parcels"})
    with pytest.raises(DatasetExists):
        cube.create_grid({"name": "parcels"})
    cube.drop_grid("air")
    assert [g.name for g in cube.grids()] == []
    cube.create_grid({"name": "air"})  # the name is free again, and starts empty
    assert cube.grid("air").sizes == {}


def test_integer_variables_keep_their_nodata(cube: gp.Cube) -> None:
    t = pd.date_range("2025-01-01", periods=2, freq="D")
    x = (np.arange(4) + 0.5) * 10.0
    y = (np.arange(3) + 0.5) * 10.0  # south-up: y grows with the row
    pop = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    pop[1, 2, 3] = np.nan
    ds = xr.Dataset({"pop": (("time", "y", "x"), pop)}, coords={"time": t, "y": y, "x": x})
    cube.create_grid({"name": "pop", "crs": "EPSG:4545",
                      "variables": [{"name": "pop", "dtype": "int32", "nodata": -1, "units": "1"}]})
    cube.ingest_grid("pop", ds)
    g = cube.grid("pop")
    assert g["pop"].dtype == np.int32 and g["pop"].values[1, 2, 3] == -1 and g["pop"].values[1, 2, 2] == 22
    np.testing.assert_allclose(g.y.values, y)
    cube.create_grid({"name": "pop2", "crs": "EPSG:4545", "variables": [{"name": "pop", "dtype": "int32"}]})
    with pytest.raises(IngestError, match="without a nodata value"):
        cube.ingest_grid("pop2", ds)


def test_only_new_steps_of_a_grown_source(cube: gp.Cube) -> None:
    cube.create_grid({"name": "air"})
    cube.ingest_grid("air", air(5))
    with pytest.raises(IngestError, match="not after"):
        cube.ingest_grid("air", air(8))
    s = cube.ingest_grid("air", air(8), only_new=True)  # the same first five days, and three more
    assert s.summary["steps_added"] == 3
    np.testing.assert_array_equal(cube.grid("air").pm25.values, air(8).pm25.values)
    again = cube.ingest_grid("air", air(8), only_new=True)  # nothing new: the newest snapshot
    assert again.id == s.id and len(cube.grid_snapshots("air")) == 3
