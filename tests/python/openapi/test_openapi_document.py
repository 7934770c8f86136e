"""The OpenAPI document a running kxy-server serves at ``/openapi.json``,
validated against the OpenAPI 3.1 specification (its JSON schema and the
rules beyond it) by openapi-spec-validator, as a code generator or an API
gateway would read it."""

from __future__ import annotations

import copy
import json
import urllib.request
from typing import Any, Iterator

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from kxy_server import KxyServer


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = KxyServer(tmp_path_factory.mktemp("openapi") / "data")
    try:
        with urllib.request.urlopen(server.base_url + "/openapi.json", timeout=30) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "application/json"
            yield json.loads(response.read())
    finally:
        server.stop()


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    errors = [str(e) for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    # The same check as the validator's command line and shortcut.
    validate(document, cls=OpenAPIV31SpecValidator)


def test_document_describes_every_area(document: dict[str, Any]) -> None:
    tags = {tag for item in document["paths"].values() for op in item.values() for tag in op["tags"]}
    assert tags == {
        "health", "segments", "auth", "users", "roles", "access",
        "counters", "keys", "credentials", "databases",
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == schemes["bearer"] | {"type": "http", "scheme": "bearer"}
    assert {schemes[s]["name"] for s in ("api_key", "api_secret")} == {"X-API-Key", "X-API-Secret"}


def _break(document: dict[str, Any], breakage: str) -> dict[str, Any]:
    broken = copy.deepcopy(document)
    operation = broken["paths"]["/api/users/{id}"]["get"]
    if breakage == "an answer without a description":
        del operation["responses"]["200"]["description"]
    elif breakage == "a repeated operationId":
        operation["operationId"] = broken["paths"]["/api/users"]["get"]["operationId"]
    elif breakage == "a path parameter not declared":
        operation["parameters"] = []
    elif breakage == "a schema of no JSON type":
        broken["components"]["schemas"]["UserView"]["properties"]["id"]["type"] = "text"
    else:
        raise AssertionError(breakage)
    return broken


@pytest.mark.parametrize(
    "breakage",
    [
        "an answer without a description",
        "a repeated operationId",
        "a path parameter not declared",
        "a schema of no JSON type",
    ],
)
def test_the_validator_catches_a_broken_document(document: dict[str, Any], breakage: str) -> None:
    """The validation above can fail: the served document, broken on purpose."""
    with pytest.raises(OpenAPIValidationError):
        validate(_break(document, breakage), cls=OpenAPIV31SpecValidator)
