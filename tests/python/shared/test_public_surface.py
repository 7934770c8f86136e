"""The public names of kxy_open_id_client, as kxy-open-id-client 0.2.1 has them.

Runs against both packages; anything the published client offers that
kxy's package lacked would fail here.
"""

from __future__ import annotations

import inspect

import kxy_open_id_client as package
from kxy_open_id_client import (
    ApiResponse,
    AsyncIdGenerator,
    AsyncIdGeneratorFactory,
    IdGenerator,
    IdGeneratorFactory,
    OpenIdAPIError,
    OpenIdClientError,
    SegmentClient,
    SegmentRequest,
    SegmentResponse,
)
from kxy_open_id_client.exceptions import OpenIdConnectionError, OpenIdTimeoutError


def test_the_exported_names() -> None:
    for name in [
        "SegmentClient", "IdGenerator", "AsyncIdGenerator", "IdGeneratorFactory",
        "AsyncIdGeneratorFactory", "SegmentRequest", "SegmentResponse", "ApiResponse",
        "OpenIdClientError", "OpenIdAPIError",
    ]:
        assert name in package.__all__, name


def test_the_exception_hierarchy_and_attributes() -> None:
    for cls in (OpenIdAPIError, OpenIdConnectionError, OpenIdTimeoutError):
        assert issubclass(cls, OpenIdClientError)
    assert issubclass(OpenIdClientError, Exception)
    error = OpenIdAPIError(code=40401, msg="counter is not registered", trace_id="abc")
    assert (error.code, error.msg, error.trace_id) == (40401, "counter is not registered", "abc")
    assert str(error) == "API Error 40401: counter is not registered"
    assert OpenIdAPIError(1, "x").trace_id is None


def test_the_models() -> None:
    request = SegmentRequest(system_code="s", db_name="d", table_name="t", field_name="f")
    assert request.model_dump() == {
        "system_code": "s", "db_name": "d", "table_name": "t", "field_name": "f", "segment_count": 10000,
    }
    envelope = ApiResponse[SegmentResponse].model_validate(
        {"code": 0, "msg": "Allocated segment: 1 to 10", "data": {"start": 1, "end": 10}, "traceId": "t1"}
    )
    assert (envelope.data.start, envelope.data.end, envelope.traceId) == (1, 10, "t1")
    assert ApiResponse().code == 0


def test_the_signatures() -> None:
    def parameters(fn) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
                if p.kind is not p.KEYWORD_ONLY][:6]

    empty = inspect.Parameter.empty
    assert parameters(SegmentClient.__init__) == [
        ("self", empty), ("base_url", empty), ("timeout", 30.0), ("verify_ssl", True), ("headers", None),
    ]
    assert parameters(SegmentClient.allocate_segment)[1:] == [
        ("system_code", empty), ("db_name", empty), ("table_name", empty), ("field_name", empty),
        ("segment_count", 10000),
    ]
    generator_args = [
        ("segment_client", empty), ("system_code", empty), ("db_name", empty),
        ("table_name", empty), ("field_name", empty),
    ]
    assert parameters(IdGenerator.__init__)[1:] == generator_args
    assert parameters(AsyncIdGenerator.__init__)[1:] == generator_args
    for factory in (IdGeneratorFactory, AsyncIdGeneratorFactory):
        assert parameters(factory.__init__)[1:] == [
            ("segment_client", empty), ("system_code", empty), ("db_name", empty), ("segment_count", 10000),
        ]
        assert parameters(factory.get_generator)[1:] == [
            ("table_name", empty), ("field_name", "id"), ("segment_count", None),
        ]
    assert inspect.iscoroutinefunction(SegmentClient.allocate_segment_async)
    assert inspect.iscoroutinefunction(AsyncIdGenerator.next_id)
    assert inspect.iscoroutinefunction(AsyncIdGeneratorFactory.get_generator)
