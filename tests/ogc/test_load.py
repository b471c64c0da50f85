"""Eight clients at once: every answer is a 200 and the same as when asked alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)


def test_eight_parallel_clients(server: str) -> None:  # noqa: F811
    rng = np.random.default_rng(5)
    queries = []
    for _ in range(120):
        x, y = rng.uniform(108.86, 109.04), rng.uniform(34.19, 34.35)
        queries.append(({"bbox": f"{x - 0.01},{y - 0.01},{x + 0.01},{y + 0.01}", "limit": 50},
                        ["incidents", "water-pipes", "buildings", "air-quality"][int(rng.integers(0, 4))]))
    alone = [httpx.get(f"{server}/collections/{c}/items", params=p, timeout=30).json()["numberMatched"]
             for p, c in queries]

    def ask(i: int) -> tuple[int, int]:
        p, c = queries[i]
        with httpx.Client(timeout=30) as client:
            r = client.get(f"{server}/collections/{c}/items", params=p)
        return r.status_code, r.json()["numberMatched"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(len(queries))))
    assert [s for s, _ in answers] == [200] * len(queries)
    assert [n for _, n in answers] == alone
