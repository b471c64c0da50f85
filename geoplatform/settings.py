"""Settings, read from ``GEOPLATFORM_*`` environment variables or passed in.

They are an object handed to whatever needs them, never a module global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Platform settings.

    >>> Settings(store="var/demo").store
    PosixPath('var/demo')
    """

    model_config = SettingsConfigDict(env_prefix="GEOPLATFORM_", extra="ignore")

    store: Path = Field(default=Path("var/store"), description="Embedded store folder")
    backend: str = Field(default="geoparquet", description="Storage backend entry point name")
    database_url: str | None = Field(
        default=None, description="A postgresql:// URL: the store is that PostGIS database (the postgis backend)")
    # 4,096 rather than the usual 100k: a row group is the unit a query decodes, and small
    # ones let a box query skip most of a partition (ARCHITECTURE.md, "Row-group size").
    row_group_size: int = Field(default=4_096, ge=1_000, le=10_000_000)
    # The space copy serves queries without time (tiles, bbox-only pages), which are
    # small in space: smaller groups decode less around them (ARCHITECTURE.md, "The space copy").
    space_row_group_size: int = Field(default=1_024, ge=256, le=10_000_000)
    max_file_rows: int = Field(default=2_000_000, ge=1_000)
    hilbert_order: int = Field(default=20, ge=4, le=31)
    compression_level: int = Field(default=3, ge=1, le=22)
    # The space copy is a copy kept for reading speed: LZ4 decodes about four times as fast
    # as zstd for some 20% more bytes (ARCHITECTURE.md, "The space copy").
    space_compression: Literal["lz4", "zstd", "snappy", "none"] = Field(
        default="lz4", description="Codec of the space copy and its samples (the rest is zstd)")
    fsync: bool = Field(default=True, description="fsync data files before a commit")
    lock_timeout_s: float = Field(default=600.0, gt=0)
    read_cache_bytes: int = Field(default=256 * 1024 * 1024, ge=0, description="Decoded row groups each process "
                                  "keeps for small reads (tiles, pages); 0 turns the cache off")
    compact_grace_s: float = Field(default=3600.0, ge=0, description="How long the files a compaction replaced "
                                   "stay on disk for readers that still name them (seconds)")
    progress: bool | None = Field(default=None, description="Progress bars; None: only on a terminal")
    api_key: str | None = Field(default=None, description="The server's own key (X-API-Key or Authorization: "
                                "Bearer): whoever holds it reads and writes every dataset; None: no such key")
    access_file: Path | None = Field(default=None, description="The users of the platform: their roles per "
                                     "department and the SHA-256 of their API keys (YAML, `geoplatform access "
                                     "key` adds to it); None: no user keys")
    jwt_secret: str | None = Field(default=None, description="Secret of HS256 bearer tokens (JWT)")
    jwt_public_key: str | None = Field(default=None, description="PEM public key of RS256 / ES256 bearer tokens")
    jwt_audience: str | None = Field(default=None, description="The aud a bearer token must name, if set")
    jwt_issuer: str | None = Field(default=None, description="The iss a bearer token must name, if set")
    anonymous_roles: dict[str, str] = Field(
        default_factory=dict, description="Roles a caller without credentials has, by department ('*': every "
        "department's shared data): {} serves the public (public datasets only); {\"*\": \"reader\"} an intranet "
        "whose callers are all the city's staff. Restricted data is never anonymous")
    audit_log: Path | None = Field(default=None, description="Where the server appends its audit log (JSON "
                                   "lines: every write and every read of restricted data); None: no log")
    outbound_allow: list[str] = Field(default_factory=list, description="Networks (CIDR) that requests the "
                                      "server makes on a caller's behalf (callbacks, remote links) may reach "
                                      "although they are not public, e.g. [\"10.20.0.0/16\"] for a city "
                                      "intranet service; by default only public addresses (geoplatform.net)")
    request_threads: int = Field(default=4, ge=1, le=256, description="Threads per server worker process that "
                                 "answer requests (reading, rendering); more requests wait for one")
    dask_scheduler: str | None = Field(default=None, description="Address of a dask.distributed scheduler "
                                       "(tcp://host:8786): grid reads and vector-to-grid aggregation then "
                                       "run on its cluster; None: on threads in this process")
    debug: bool = Field(default=False, description="Server tracebacks in error responses; never on a public "
                        "server (geoplatform serve --debug)")
