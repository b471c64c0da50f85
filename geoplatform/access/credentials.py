"""Credentials: API keys and bearer tokens (JWT), turned into principals.

API keys are listed in an access file (YAML) as the SHA-256 of the key, never
the key itself; ``geoplatform access key`` makes one, prints it once and adds
its hash to the file::

    users:
      - name: li.wei
        roles: {water: editor, planning: reader}
        keys: [sha256:9f86d0...]

Bearer tokens are JWTs signed with the configured secret (HS256) or checked
with the configured public key (RS256, ES256); they must carry ``sub`` and
``exp``, and ``roles`` (``{"water": "editor"}``) or ``department`` and
``role``. ``aud`` and ``iss`` are checked when the settings name them.

A request without credentials is anonymous; a request with credentials
that do not check out is refused (401), never taken as anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geoplatform.access.policy import ANONYMOUS, EVERY_DEPARTMENT, ROLES, Principal
from geoplatform.errors import CatalogError, Unauthorized

KEY_PREFIX = "gpk_"


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new API key: 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class User:
    name: str
    roles: Mapping[str, str]
    keys: tuple[str, ...]


def _check_roles(where: str, roles: Any, departments: set[str] | None) -> dict[str, str]:
    if not isinstance(roles, Mapping) or not roles:
        raise CatalogError(f"{where}: roles must map departments to a role ({', '.join(ROLES)})")
    out = {}
    for dep, role in roles.items():
        if role not in ROLES:
            raise CatalogError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        if departments is not None and dep != EVERY_DEPARTMENT and dep not in departments:
            raise CatalogError(f"{where}: no department {dep!r} in the catalog")
        out[str(dep)] = str(role)
    return out


class AccessFile:
    """The users of an access file, found by the hash of a key."""

    def __init__(self, users: list[User], path: Path | None = None) -> None:
        self.users = users
        self.path = path
        self._by_hash: dict[str, User] = {}
        for u in users:
            for h in u.keys:
                if h in self._by_hash:
                    raise CatalogError(f"access file {path}: a key of {u.name!r} is also {self._by_hash[h].name!r}'s")
                self._by_hash[h] = u

    @classmethod
    def load(cls, path: Path, departments: set[str] | None = None) -> "AccessFile":
        try:
            data = yaml.safe_load(path.read_text()) if path.exists() else {}
        except yaml.YAMLError as exc:
            raise CatalogError(f"access file {path} is not valid YAML: {exc}") from None
        data = data or {}
        if not isinstance(data, Mapping) or set(data) - {"users"}:
            raise CatalogError(f"access file {path}: expected one key, users")
        users = []
        names = set()
        for k, u in enumerate(data.get("users") or []):
            where = f"access file {path}, user {k + 1}"
            if not isinstance(u, Mapping) or not isinstance(u.get("name"), str) or not u["name"]:
                raise CatalogError(f"{where}: needs a name")
            if set(u) - {"name", "roles", "keys"}:
                raise CatalogError(f"{where}: unknown keys {sorted(set(u) - {'name', 'roles', 'keys'})}")
            if u["name"] in names:
                raise CatalogError(f"{where}: {u['name']!r} is listed twice")
            names.add(u["name"])
            keys = tuple(u.get("keys") or ())
            bad = [h for h in keys if not (isinstance(h, str) and h.startswith("sha256:") and len(h) == 71)]
            if bad:
                raise CatalogError(f"{where}: keys are listed as sha256:<64 hex digits>, not {bad[0]!r}")
            users.append(User(u["name"], _check_roles(where, u.get("roles"), departments), keys))
        return cls(users, path)

    def user_of(self, key: str) -> User | None:
        h = hash_key(key)
        u = self._by_hash.get(h)
        # the dictionary lookup is on a hash of the key; compare again in constant time
        return u if u is not None and any(hmac.compare_digest(h, k) for k in u.keys) else None

    def add_key(self, name: str, roles: Mapping[str, str] | None, departments: set[str] | None = None) -> str:
        """A new key for ``name`` (made a user with ``roles`` if new); the file is rewritten. Returns the key."""
        if self.path is None:
            raise CatalogError("this access list has no file to write")
        key = new_key()
        data = yaml.safe_load(self.path.read_text()) if self.path.exists() else None
        data = data or {"users": []}
        for u in data["users"]:
            if u["name"] == name:
                if roles:
                    u["roles"] = _check_roles(f"user {name!r}", dict(roles), departments)
                u.setdefault("keys", []).append(hash_key(key))
                break
        else:
            if not roles:
                raise CatalogError(f"{name!r} is a new user: give its roles")
            data["users"].append({"name": name, "roles": _check_roles(f"user {name!r}", dict(roles), departments),
                                  "keys": [hash_key(key)]})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("# Users of the platform: their roles per department and the SHA-256 of their API keys\n"
                       "# (made by `geoplatform access key`; the keys themselves are never stored).\n"
                       + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        tmp.replace(self.path)
        return key


@dataclass(frozen=True)
class JwtConfig:
    secret: str | None = None
    public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.public_key)


def _from_jwt(token: str, cfg: JwtConfig) -> Principal:
    import jwt

    if not cfg.enabled:
        raise Unauthorized("this server takes no bearer tokens (no JWT key is configured); use an API key")
    key, algs = (cfg.secret, ["HS256"]) if cfg.secret else (cfg.public_key, ["RS256", "ES256"])
    try:
        claims = jwt.decode(token, key, algorithms=algs, audience=cfg.audience, issuer=cfg.issuer,
                            options={"require": ["exp", "sub"], "verify_aud": cfg.audience is not None})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the bearer token is not valid: {exc}") from None
    roles = claims.get("roles")
    if roles is None and "department" in claims:
        roles = {claims["department"]: claims.get("role", "reader")}
    if not isinstance(roles, Mapping) or not all(isinstance(r, str) and r in ROLES for r in roles.values()):
        raise Unauthorized(f"the bearer token's roles must map departments to {', '.join(ROLES)}")
    return Principal(str(claims["sub"]), {str(d): r for d, r in roles.items()}, via="jwt")  # type: ignore[misc]


def anonymous(roles: Mapping[str, str] | None = None) -> Principal:
    """The principal of a caller without credentials: no roles (the public), or the
    roles a deployment gives everyone who reaches it (an intranet); reading restricted
    data always needs a department's own credentials."""
    if not roles:
        return ANONYMOUS
    bad = [r for r in roles.values() if r != "reader"]
    if bad:
        raise CatalogError(f"callers without credentials can only be readers, not {bad[0]!r}")
    if any(d != EVERY_DEPARTMENT for d in roles):
        raise CatalogError("callers without credentials can only be given '*' (every department's shared data)")
    return Principal(None, dict(roles), via="anonymous")  # type: ignore[arg-type]


def authenticate(headers: Mapping[str, str], access: AccessFile | None, jwt_cfg: JwtConfig,
                 platform_key: str | None = None, nobody: Principal = ANONYMOUS) -> Principal:
    """The principal of a request's headers (``X-API-Key``, or ``Authorization: Bearer``
    with an API key or a JWT); ``nobody`` without either."""
    given = headers.get("x-api-key")
    auth = headers.get("authorization")
    if given is None and auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <API key or token>'")
        given = value.strip()
    if given is None:
        return nobody
    if given.count(".") == 2 and not given.startswith(KEY_PREFIX):
        return _from_jwt(given, jwt_cfg)
    if platform_key is not None and hmac.compare_digest(given.encode(), platform_key.encode()):
        # the server's own key (GEOPLATFORM_API_KEY): an operator of every department
        return Principal("platform", {}, via="api-key", superuser=True)
    user = access.user_of(given) if access is not None else None
    if user is None:
        raise Unauthorized("the API key is not valid")
    return Principal(user.name, dict(user.roles), via="api-key")  # type: ignore[arg-type]
