"""The HTTP API against its own OpenAPI document (/openapi.json) with schemathesis: generated
requests, bounded in number, never get a 500 and every answer matches the documented schema."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from msgtrace.web.app import create_app
from msgtrace.web.params import Defaults
from tests.helpers_web import NOW, build_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis
    from schemathesis.checks import negative_data_rejection, positive_data_acceptance

_STORE = Path(__file__).resolve().parent.parent / "build" / "test-web-schema-store"


def _app():  # type: ignore[no-untyped-def]
    import shutil

    shutil.rmtree(_STORE, ignore_errors=True)
    build_store(_STORE)
    return create_app(_STORE, defaults=Defaults(now=NOW, timezone="UTC"))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_match_the_openapi_document(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    # Every check but two. "Schema-valid data is accepted": the schema cannot say the CLI's date
    # grammar or that V1 and V2 paging exclude each other, so such a request is rightly a 400 (whose
    # body the schema does describe, and that is checked). "Schema-violating data is rejected": an
    # empty value counts as absent (an HTML form sends its empty fields), so `max_age_days=` is
    # accepted though it is no integer.
    case.validate_response(response, excluded_checks=[positive_data_acceptance, negative_data_rejection])


def test_schemathesis_generates_requests_for_every_operation() -> None:
    operations = {op.ok().path for op in schema.get_all_operations()}
    assert operations == {"/api/v1/trace", "/api/v1/detail", "/api/v1/summary"}


@pytest.mark.parametrize("path", ["/api/v1/trace", "/api/v1/summary"])
def test_a_valid_request_is_checked_too(path: str) -> None:
    """Random strings mostly get 400s: one request known to succeed goes through the same checks."""
    case = schema[path]["GET"].Case(query={"start_date": "2026-06-12", "end_date": NOW})
    response = case.call()
    assert response.status_code == 200
    case.validate_response(response)
