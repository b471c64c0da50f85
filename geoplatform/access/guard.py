"""The access policy in the Python API and the CLI: a store seen by one principal.

``open_cube(store, api_key=...)`` (or ``token=``, or ``principal=``) wraps the
store's backend in a :class:`GuardedBackend`. Every path of the Cube goes
through its backend, so the same rules as the server's hold everywhere: a
dataset or grid the principal may not read does not exist for it (it is in no
listing, and naming it raises :class:`DatasetNotFound` with the same words as
for a name that is not there); writing needs ``editor`` or above in the owner
department (:class:`Forbidden` otherwise); personal data is read row by row
only by its own department.

With an audit log in the settings, every write (and refused write) and every
read of restricted data through such a cube is logged as the server logs
them, with ``"path": "python"``.

This binds what the platform's notebooks and command line do for a user. It
is no barrier against whoever can read the store's files or log in to its
database directly: those are the operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from geoplatform.access.audit import AuditLog
from geoplatform.access.credentials import AccessFile, JwtConfig, anonymous, authenticate
from geoplatform.access.policy import Principal, can_read, can_write
from geoplatform.errors import DatasetNotFound, Forbidden
from geoplatform.settings import Settings


def principal_from(settings: Settings, *, api_key: str | None = None, token: str | None = None) -> Principal:
    """The principal of an API key or a bearer token, checked as the server checks them
    (the settings' access file, JWT keys and anonymous roles); neither: anonymous."""
    headers: dict[str, str] = {}
    if api_key:
        headers["x-api-key"] = api_key
    if token:
        headers["authorization"] = f"Bearer {token}"
    access = AccessFile.load(settings.access_file) if settings.access_file else None
    jwt_cfg = JwtConfig(settings.jwt_secret, settings.jwt_public_key, settings.jwt_audience, settings.jwt_issuer)
    return authenticate(headers, access, jwt_cfg, settings.api_key, anonymous(settings.anonymous_roles))


def _checked(method: Any, check: Any) -> Any:
    """``method(name, ...)``, once ``check(name)`` has passed."""
    def read(name: str, *args: Any, **kw: Any) -> Any:
        check(name)
        return method(name, *args, **kw)
    return read


def _hidden(name: str, what: str = "dataset") -> DatasetNotFound:
    return DatasetNotFound(f"no {what} named {name!r}", dataset=name)


class GuardedBackend:
    """A storage backend as ``principal`` may see and change it (see the module docstring)."""

    _READS = frozenset({"snapshots", "head", "snapshot_at", "check_snapshot", "scan", "count_rows", "history",
                        "stats", "log", "changed_bounds", "current_keys", "last_versions"})
    #: reads of the records themselves (audited when the data is restricted)
    _DATA_READS = frozenset({"scan", "history"})

    def __init__(self, inner: Any, principal: Principal, audit: AuditLog | None = None) -> None:
        self.inner, self.principal, self.audit = inner, principal, audit
        self.name, self.location, self.settings = inner.name, inner.location, getattr(inner, "settings", None)
        self._grids: GuardedGrids | None = None

    def _log(self, action: str, method: str, spec: Any, status: str) -> None:
        if self.audit is not None:
            self.audit.record(self.principal, action, method=method, path="python", dataset=spec.name,
                              datasets=[spec.name], open_level=[spec.open_level], status=status)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.inner!r} as {self.principal.name or 'anonymous'}>"

    def get_spec(self, name: str) -> Any:
        spec = self.inner.get_spec(name)
        if not can_read(self.principal, spec):
            raise _hidden(name)
        return spec

    def list_specs(self) -> list[Any]:
        return [s for s in self.inner.list_specs() if can_read(self.principal, s)]

    def _writable(self, name: str, method: str, spec: Any = None) -> None:
        spec = spec if spec is not None else self.get_spec(name)
        if not can_write(self.principal, spec):
            self._log("write", method, spec, "refused")
            raise Forbidden(f"changing {name!r} needs an editor role in department {spec.department!r}")
        self._log("write", method, spec, "allowed")

    def create_dataset(self, spec: Any, *args: Any, **kw: Any) -> Any:
        self._writable(spec.name, "create_dataset", spec)
        return self.inner.create_dataset(spec, *args, **kw)

    def drop_dataset(self, name: str) -> None:
        self._writable(name, "drop_dataset")
        self.inner.drop_dataset(name)

    def writer(self, name: str) -> AbstractContextManager[Any]:
        self._writable(name, "write")
        return self.inner.writer(name)  # type: ignore[no-any-return]

    def compact(self, name: str) -> Any:
        self._writable(name, "compact")
        return self.inner.compact(name)

    def _read(self, method: str) -> Any:
        def check(name: str) -> None:
            spec = self.get_spec(name)
            if method in self._DATA_READS and spec.open_level == "restricted":
                self._log("read", method, spec, "allowed")
        return check

    def close(self) -> None:
        self.inner.close()
        if self.audit is not None:
            self.audit.close()

    def grids(self) -> "GuardedGrids":
        if self._grids is None:
            self._grids = GuardedGrids(self.inner.grids(), self.principal)
        return self._grids

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        return _checked(value, self._read(attr)) if attr in self._READS else value


class GuardedGrids:
    """The grids of a store as ``principal`` may see and change them."""

    _READS = frozenset({"snapshots", "resolve", "array", "read", "open"})

    def __init__(self, inner: Any, principal: Principal) -> None:
        self.inner, self.principal = inner, principal

    def row(self, name: str) -> Any:
        row = self.inner.row(name)
        if not can_read(self.principal, row.spec):
            raise _hidden(name, "grid")
        return row

    def names(self) -> list[str]:
        return [n for n in self.inner.names() if can_read(self.principal, self.inner.row(n).spec)]

    def create(self, spec: Any) -> Any:
        if not can_write(self.principal, spec):
            raise Forbidden(f"creating grid {spec.name!r} needs an editor role in department {spec.department!r}")
        return self.inner.create(spec)

    def _writable(self, name: str) -> None:
        spec = self.row(name).spec
        if not can_write(self.principal, spec):
            raise Forbidden(f"changing grid {name!r} needs an editor role in department {spec.department!r}")

    def append(self, name: str, *args: Any, **kw: Any) -> Any:
        self._writable(name)
        return self.inner.append(name, *args, **kw)

    def drop(self, name: str) -> None:
        self._writable(name)
        self.inner.drop(name)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        return _checked(value, self.row) if attr in self._READS else value


def guarded(backend: Any, principal: Principal | Mapping[str, str], audit: AuditLog | None = None) -> GuardedBackend:
    """``backend`` as ``principal`` (a :class:`Principal`, or roles per department) sees it."""
    if not isinstance(principal, Principal):
        principal = Principal("python-api", dict(principal))  # type: ignore[arg-type]
    return GuardedBackend(backend, principal, audit)
