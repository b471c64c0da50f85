"""schemathesis generates requests from the server's own OpenAPI document: no 5xx, ever.

The operations are driven through schemathesis' strategies with hypothesis
directly (its pytest plugin does not run under this pytest).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)

# more with GEOPLATFORM_FUZZ_EXAMPLES=500 when hunting
EXAMPLES = int(os.environ.get("GEOPLATFORM_FUZZ_EXAMPLES", "25"))


@pytest.mark.slow
def test_no_server_errors(server: str) -> None:  # noqa: F811
    schema = schemathesis.openapi.from_url(f"{server}/api")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 40  # every collection's four paths, and the four of the API
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        run()
