"""The platform's errors.

One root, :class:`GeoPlatformError`. Each subclass also inherits the builtin it
naturally is (``DatasetNotFound`` is a ``KeyError``), and carries the HTTP
status and the OGC exception code that the server layer answers with, so the
translation to HTTP lives in one table and not in every endpoint.
"""

from __future__ import annotations

from typing import Any


class GeoPlatformError(Exception):
    """Root of every error the platform raises on purpose."""

    http_status: int = 500
    ogc_code: str = "NoApplicableCode"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The OGC API exception body (``code`` and ``description``)."""
        body: dict[str, Any] = {"code": self.ogc_code, "description": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidParameterValue(GeoPlatformError, ValueError):
    """A query or call parameter has a value that cannot be used."""

    http_status = 400
    ogc_code = "InvalidParameterValue"


class FilterError(InvalidParameterValue):
    """A CQL2 filter could not be parsed or does not fit the dataset."""


class CRSError(InvalidParameterValue):
    """An unknown CRS, or coordinates outside the range of their CRS."""


class DatasetNotFound(GeoPlatformError, KeyError):
    """No dataset of that name (or the caller may not see it)."""

    http_status = 404
    ogc_code = "NotFound"


class FeatureNotFound(GeoPlatformError, KeyError):
    """No feature with that id in the dataset."""

    http_status = 404
    ogc_code = "NotFound"


class SnapshotNotFound(GeoPlatformError, KeyError):
    """No snapshot with that id, or none at or before that time."""

    http_status = 404
    ogc_code = "NotFound"


class DatasetExists(GeoPlatformError, FileExistsError):
    """A dataset of that name already exists."""

    http_status = 409
    ogc_code = "Conflict"


class SchemaError(GeoPlatformError, ValueError):
    """Input does not match the dataset's declared schema.

    ``details["rows"]`` lists the offending rows (0-based positions in the
    input, or feature ids) with what is wrong with each.
    """

    http_status = 400
    ogc_code = "InvalidParameterValue"


class IngestError(GeoPlatformError, ValueError):
    """An input file cannot be read (malformed, empty, unsupported)."""

    http_status = 400
    ogc_code = "InvalidParameterValue"


class InvalidGeometryError(IngestError):
    """Geometries that are invalid under ``on_invalid="raise"``."""


class CommitConflict(GeoPlatformError, RuntimeError):
    """Another writer committed first and the change can no longer apply."""

    http_status = 409
    ogc_code = "Conflict"


class CatalogError(GeoPlatformError, ValueError):
    """A declarative catalog or layer file is malformed."""

    http_status = 500
    ogc_code = "NoApplicableCode"


class StoreError(GeoPlatformError, OSError):
    """The store on disk is missing, locked beyond the timeout, or damaged."""

    http_status = 500
    ogc_code = "NoApplicableCode"


class Unauthorized(GeoPlatformError, PermissionError):
    """A write (or a restricted read) came without credentials."""

    http_status = 401
    ogc_code = "Unauthorized"


class Forbidden(GeoPlatformError, PermissionError):
    """The credentials do not allow this."""

    http_status = 403
    ogc_code = "Forbidden"


class NotEditable(GeoPlatformError):
    """The collection does not accept writes."""

    http_status = 405
    ogc_code = "MethodNotAllowed"


class FeatureExists(GeoPlatformError):
    """The feature to create exists already."""

    http_status = 409
    ogc_code = "Conflict"


class PreconditionFailed(GeoPlatformError):
    """If-Match names a version that is no longer the current one."""

    http_status = 412
    ogc_code = "PreconditionFailed"
