"""The one JSON API (django-ninja): OpenAPI at /api/openapi.json, docs at /api/docs."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from csp.decorators import csp_update
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import get_template
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from benchmarks.api import router as benchmarks_router
from catalog.api import router as catalog_router
from inference.api import router as inference_router
from probe.api import router as probe_router


def _inline_script_hashes(template_name: str) -> list[str]:
    """CSP sources for the inline scripts of a template that holds no template tags inside them."""
    source = Path(get_template(template_name).origin.name).read_text()
    scripts = re.findall(r"<script>(.*?)</script>", source, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts]


def _docs_csp(view: Any) -> Any:
    """The Swagger page runs one inline script (templates/ninja/swagger.html): allow exactly that one."""
    return csp_update({"script-src": _inline_script_hashes("ninja/swagger.html")})(view)


# Answers the framework and the server give to any operation, whatever its view does: documented on every operation
# they can reach (RigfitAPI.get_openapi_schema), so a client (and schemathesis' conformance checks) meet no
# undocumented status. An operation's own responses (404 for an unknown slug, 429, ...) are declared on its route.
ERROR_SCHEMA_NAME = "ApiError"
ERROR_SCHEMA = {
    "title": ERROR_SCHEMA_NAME,
    "description": "The API's one error shape: a message, and for invalid input the fields at fault.",
    "type": "object",
    "properties": {
        "message": {"title": "Message", "type": "string"},
        "errors": {
            "title": "Errors",
            "type": "array",
            "items": {"type": "object"},
            "description": "For 422: the fields at fault, each with loc, msg and type.",
        },
    },
    "required": ["message"],
}
_JSON_ERROR = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}}
COMMON_ANSWERS: dict[int, tuple[str, str]] = {
    # status: (which operations: "inputs" = any parameter or body, "body" = a request body, "params" = a path or
    # query parameter; description)
    400: ("body", "The body is not JSON (or not UTF-8)."),
    413: ("body", "The body is larger than the server accepts (2 MiB; config.middleware)."),
    414: (
        "params",
        "The request line is longer than the server accepts (gunicorn's limit_request_line, 4094 bytes). "
        "Answered by the server before the API, without a JSON body.",
    ),
    422: ("inputs", "Invalid input: a parameter or body field out of its bounds or of the wrong type."),
}


def _reaches(operation: dict[str, Any], scope: str) -> bool:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if scope == "body":
        return has_body
    if scope == "params":
        return bool(parameters)
    return has_body or bool(parameters)


def document_common_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add COMMON_ANSWERS to every operation they can reach that does not declare the status itself."""
    schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for status, (scope, description) in COMMON_ANSWERS.items():
                if status in responses or str(status) in responses or not _reaches(operation, scope):
                    continue
                answer: dict[str, Any] = {"description": description}
                if status != 414:  # gunicorn's own page, not the API's JSON
                    answer["content"] = _JSON_ERROR
                responses[status] = answer
    return schema


class RigfitAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: Any = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        document_common_answers(schema)
        return schema


api = RigfitAPI(
    title="rigfit API",
    version="1",
    description="Catalog, hardware fit and benchmarks for running open models locally.",
    urls_namespace="api",
    docs_decorator=_docs_csp,
)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return api.create_response(request, {"message": "Invalid input.", "errors": exc.errors}, status=422)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return api.create_response(request, {"message": str(exc)}, status=exc.status_code)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, {"message": str(exc) or "Not found."}, status=404)


@api.exception_handler(RequestDataTooBig)
def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return api.create_response(request, {"message": f"The body is larger than {limit // 1024} KiB."}, status=413)


@api.exception_handler(SuspiciousOperation)
def suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return api.create_response(request, {"message": "Bad request."}, status=400)


@api.exception_handler(Exception)
def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Any other failure: logged with its traceback as Django logs a 500, answered in the API's JSON shape."""
    logging.getLogger("django.request").error(
        "Internal Server Error: %s", request.path, exc_info=exc, extra={"status_code": 500, "request": request}
    )
    response = api.create_response(request, {"message": "Internal server error."}, status=500)
    response._has_been_logged = True  # type: ignore[attr-defined]  # logged above, with the traceback
    return response


api.add_router("", catalog_router)
api.add_router("/benchmarks", benchmarks_router)
api.add_router("/demo", inference_router)
api.add_router("/probe", probe_router)
