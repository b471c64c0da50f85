"""Gridded variables in the cube: time stacks of maps on one regular grid,
stored as Zarr v3 with CF metadata, appended as snapshots."""

from geoplatform.grids.model import GridGeometry, GridSpec, GridVariable

__all__ = ["GridGeometry", "GridSpec", "GridVariable"]
