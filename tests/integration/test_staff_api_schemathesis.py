"""The staff API against its own OpenAPI description: schemathesis sends generated requests
(paths, query strings and bodies, valid and not) with the dean's token to the app in process.
No request may make the server fail (5xx), and every answer must be one the schema declares,
in the declared shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from storage import migrate
from storage.db import create_db_engine
from tests.integration.staff_world import StaffWorld, build_world
from tests.integration.webclient import make_app

# Per operation: enough to reach every status each one declares, in well under a minute.
EXAMPLES = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffWorld]:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}")
    migrate.upgrade(engine)
    built = build_world(engine)
    try:
        yield built
    finally:
        built.close()
        engine.dispose()


def test_the_api_answers_every_generated_request_as_its_schema_says(world: StaffWorld) -> None:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", make_app(world.engine, clock=world.clock)
    )
    headers = {"Authorization": f"Bearer {world.tokens['dean']}"}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
                headers=headers,
            )

        answers()
