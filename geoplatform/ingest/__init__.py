"""Ingest: loading files and frames into the cube."""

from geoplatform.ingest.pipeline import IngestReport, ingest

__all__ = ["IngestReport", "ingest"]
