"""Principals from credentials, and what the policy lets them read and write."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from geoplatform.access.credentials import AccessFile, JwtConfig, anonymous, authenticate, hash_key
from geoplatform.access.policy import ANONYMOUS, Principal, can_read, can_write, is_owner
from geoplatform.errors import CatalogError, Unauthorized

DEPS = {"water", "planning", "housing", "public_security"}
SECRET = "unit-test-secret-that-is-long-enough"


def entry(department: str, level: str, shared: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(department=department, open_level=level, shared_with=shared)


def test_open_levels() -> None:
    pub, shared, restricted = entry("water", "public"), entry("water", "shared", ("planning",)), \
        entry("public_security", "restricted")
    water = Principal("wu", {"water": "reader"})
    planner = Principal("zhao", {"planning": "editor"})
    ops = Principal("ops", {"*": "admin"})
    police = Principal("guo", {"public_security": "reader"})
    assert [can_read(p, pub) for p in (ANONYMOUS, water, planner, ops, police)] == [True] * 5
    assert [can_read(p, shared) for p in (ANONYMOUS, water, planner, ops, police)] == [False, True, True, True, False]
    assert [can_read(p, restricted) for p in (ANONYMOUS, water, planner, ops, police)] == [False, False, False,
                                                                                            False, True]
    # writes: an editor (or above) of the owner department only
    assert not can_write(water, pub) and not can_write(planner, shared) and not can_write(ops, shared)
    assert can_write(Principal("li", {"water": "steward"}), shared)
    assert is_owner(police, restricted) and not is_owner(ops, restricted)
    root = Principal("platform", {}, superuser=True)
    assert can_read(root, restricted) and can_write(root, restricted) and not is_owner(root, restricted)


def test_api_keys_are_kept_as_hashes(tmp_path: Path) -> None:
    f = tmp_path / "access.yaml"
    key = AccessFile.load(f, DEPS).add_key("wu", {"water": "editor"}, DEPS)
    assert key.startswith("gpk_") and key not in f.read_text() and hash_key(key) in f.read_text()
    second = AccessFile.load(f, DEPS).add_key("wu", None, DEPS)  # a second key, same roles
    af = AccessFile.load(f, DEPS)
    for k in (key, second):
        who = authenticate({"x-api-key": k}, af, JwtConfig())
        assert (who.name, dict(who.roles), who.via) == ("wu", {"water": "editor"}, "api-key")
    with pytest.raises(Unauthorized, match="not valid"):
        authenticate({"x-api-key": key + "x"}, af, JwtConfig())
    with pytest.raises(CatalogError, match="no department 'sewers'"):
        AccessFile.load(f, DEPS).add_key("li", {"sewers": "reader"}, DEPS)
    with pytest.raises(CatalogError, match="role 'god'"):
        AccessFile.load(f, DEPS).add_key("li", {"water": "god"}, DEPS)
    with pytest.raises(CatalogError, match="new user"):
        AccessFile.load(f, DEPS).add_key("li", None, DEPS)
    f.write_text("users:\n  - name: x\n    roles: {water: reader}\n    keys: [plaintext-key]\n")
    with pytest.raises(CatalogError, match="sha256"):
        AccessFile.load(f, DEPS)


def test_bearer_tokens() -> None:
    cfg = JwtConfig(secret=SECRET, audience="city-platform")
    exp = int(time.time()) + 60
    good = jwt.encode({"sub": "zhao", "exp": exp, "aud": "city-platform", "roles": {"planning": "reader"}}, SECRET)
    who = authenticate({"authorization": f"Bearer {good}"}, None, cfg)
    assert (who.name, dict(who.roles), who.via) == ("zhao", {"planning": "reader"}, "jwt")
    cases = {
        "expired": jwt.encode({"sub": "z", "exp": int(time.time()) - 5, "aud": "city-platform"}, SECRET),
        "not valid": jwt.encode({"sub": "z", "exp": exp, "aud": "another-service"}, SECRET),
        "roles": jwt.encode({"sub": "z", "exp": exp, "aud": "city-platform", "roles": {"water": "god"}}, SECRET),
        "exp": jwt.encode({"sub": "z", "aud": "city-platform"}, SECRET),
    }
    for why, token in cases.items():
        with pytest.raises(Unauthorized, match=why):
            authenticate({"authorization": f"Bearer {token}"}, None, cfg)
    # a token signed "none" is never accepted
    unsigned = jwt.encode({"sub": "z", "exp": exp, "aud": "city-platform"}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        authenticate({"authorization": f"Bearer {unsigned}"}, None, cfg)
    with pytest.raises(Unauthorized, match="no JWT key"):
        authenticate({"authorization": f"Bearer {good}"}, None, JwtConfig())


def test_callers_without_credentials() -> None:
    assert authenticate({}, None, JwtConfig()) is ANONYMOUS
    intranet = anonymous({"*": "reader"})
    assert authenticate({}, None, JwtConfig(), nobody=intranet) is intranet
    assert intranet.anonymous and not can_write(intranet, entry("water", "shared"))
    assert not can_read(intranet, entry("public_security", "restricted"))
    with pytest.raises(CatalogError, match="readers"):
        anonymous({"*": "editor"})
    with pytest.raises(CatalogError, match="'\\*'"):
        anonymous({"water": "reader"})
    with pytest.raises(Unauthorized, match="Bearer"):
        authenticate({"authorization": "Basic eDp5"}, None, JwtConfig())
