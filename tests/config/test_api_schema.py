"""Issue #12, defect 2: the OpenAPI schema documents every status the API answers (schemathesis' status-code
conformance found 422, 400, 414 and a 404 undocumented), and every list bounds its `page`."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    return client.get("/api/openapi.json").json()


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_with_a_body_documents_unparseable_too_large_and_invalid_bodies(schema):
    with_body = {name: op for name, op in operations(schema) if "requestBody" in op}
    assert "POST /api/benchmarks" in with_body and "POST /api/fit/estimate" in with_body
    for name, operation in with_body.items():
        assert {"400", "413", "422"} <= set(operation["responses"]), name
        assert operation["responses"]["413"]["content"]["application/json"]["schema"], name


def test_every_operation_with_parameters_documents_invalid_and_too_long_requests(schema):
    with_params = {name: op for name, op in operations(schema) if op.get("parameters")}
    assert len(with_params) >= 9
    for name, operation in with_params.items():
        assert {"414", "422"} <= set(operation["responses"]), name
        assert "content" not in operation["responses"]["414"], name  # gunicorn's own answer, not JSON


def test_an_operation_keeps_its_own_declaration_of_a_common_status(schema):
    fit_422 = schema["paths"]["/api/fit"]["get"]["responses"]["422"]
    assert fit_422["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Message"}
    assert "ApiError" in schema["components"]["schemas"]


def test_the_catalog_lists_bound_page_in_the_schema_and_refuse_past_it(client, schema, catalog):
    limit = settings.RIGFIT_API_MAX_PAGE
    for path in ("/api/models", "/api/hardware"):
        [page] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "page"]
        assert page["schema"]["maximum"] == limit
        past = client.get(path, {"page": str(limit + 1)})
        assert past.status_code == 422 and past["Content-Type"] == "application/json"
        assert past.json()["errors"][0]["loc"] == ["query", "page"]
        last = client.get(path, {"page": str(limit)})
        assert last.status_code == 200 and last.json()["items"] == []


def test_a_model_list_filtered_by_unknown_hardware_is_a_documented_404(client, schema, catalog):
    assert "404" in schema["paths"]["/api/models"]["get"]["responses"]
    response = client.get("/api/models", {"fits": "no-such-device"})
    assert response.status_code == 404 and response.json() == {"message": "Unknown hardware 'no-such-device'."}
