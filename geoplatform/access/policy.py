"""Principals and the open levels of datasets.

A principal holds a role in some departments: ``reader``, ``editor``,
``steward`` or ``admin`` (each includes the ones before it). The platform's
operators (the data bureau that brokers sharing) may hold a role in ``*``.
A dataset (or grid) has an owner department and an open level:

* ``public``: everyone sees it, anonymous callers too;
* ``shared``: its department, the departments in ``shared_with`` and the
  operators see it;
* ``restricted``: only its department sees it (not the operators either).

Writing needs ``editor`` or above in the owner department itself. What a
principal may not see does not exist for it: the server answers 404 and
lists nothing of it.

Personal data (a dataset whose ``personal`` is ``natural_person`` or
``legal_entity``) is restricted, and stricter still: only members of its own
department read or write it row by row; the server's own key does not (it
runs the server, it is nobody's department). Others see it only through
aggregate layers that suppress small counts
(:mod:`geoplatform.access.disclosure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from geoplatform.errors import InvalidParameterValue

Role = Literal["reader", "editor", "steward", "admin"]
ROLES: tuple[Role, ...] = ("reader", "editor", "steward", "admin")
EVERY_DEPARTMENT = "*"


def _rank(role: str) -> int:
    if role not in ROLES:
        raise InvalidParameterValue(f"role {role!r} is not one of {', '.join(ROLES)}")
    return ROLES.index(role)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a name (None: anonymous) and a role per department."""

    name: str | None = None
    roles: Mapping[str, Role] = field(default_factory=dict)
    #: how it proved who it is: "anonymous", "api-key" or "jwt"
    via: str = "anonymous"
    #: the server's own key (``GEOPLATFORM_API_KEY``): whoever runs the server, who
    #: holds the store anyway; reads and writes everything, but is no department's
    #: member, so personal data never leaves row by row to it either
    superuser: bool = False

    def __post_init__(self) -> None:
        for role in self.roles.values():
            _rank(role)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """What decides visibility: principals with the same key see the same things."""
        return (*sorted(self.roles.items()), ("superuser", str(self.superuser)))

    def role_in(self, department: str | None, *, operators: bool = False) -> int:
        """The rank of its role in ``department`` (-1: none); with ``operators``, a
        role in every department (``*``) counts too."""
        ranks = [_rank(r) for d, r in self.roles.items()
                 if (department and d == department) or (operators and d == EVERY_DEPARTMENT)]
        return max(ranks, default=-1)

    def departments(self) -> set[str]:
        return {d for d in self.roles if d != EVERY_DEPARTMENT}


ANONYMOUS = Principal()


class Entry:
    """What the policy reads of a dataset or grid spec (duck-typed: ``department``,
    ``open_level``, ``shared_with``)."""

    department: str | None
    open_level: str
    shared_with: tuple[str, ...]
    personal: str | None


def can_read(p: Principal, entry: Entry) -> bool:
    level = entry.open_level
    if getattr(entry, "personal", None):
        return is_owner(p, entry)
    if level == "public" or p.superuser:
        return True
    if p.role_in(entry.department) >= 0:
        return True
    if level == "shared":
        return p.role_in(None, operators=True) >= 0 or any(p.role_in(d) >= 0 for d in entry.shared_with)
    return False


def can_write(p: Principal, entry: Entry) -> bool:
    if p.superuser and not getattr(entry, "personal", None):
        return True
    return p.role_in(entry.department) >= _rank("editor")


def is_owner(p: Principal, entry: Entry) -> bool:
    """A member of the owner department: who may read personal data row by row."""
    return p.role_in(entry.department) >= 0
