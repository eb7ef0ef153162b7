"""Request checks that apply to every view."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.decorators import sync_and_async_middleware

NUL = "\x00"
NUL_MESSAGE = "Requests may not contain NUL (\\x00) characters."


@sync_and_async_middleware
def reject_nul_characters(get_response: Callable[..., Any]) -> Callable[..., Any]:
    """Answer 422 (API, JSON) or 400 (pages) to a request carrying a NUL character in its path, query, urlencoded
    form fields or JSON body. PostgreSQL text cannot hold NUL, so such a value would otherwise fail in the database
    as a 500 wherever it reaches a lookup or a write without passing a Django form (which refuses NUL itself)."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            return _refusal(request) or await get_response(request)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _refusal(request) or get_response(request)

    return middleware


def _page_refusal(request: HttpRequest) -> HttpResponse | None:
    """Answer 422 JSON to an API list asked for a page beyond RIGFIT_API_MAX_PAGE.

    The offset (page - 1) x page size past 2^63 failed in the database as an HTML 500. The lists of every router
    (ninja's PageNumberPagination in the catalog, benchmarks' own filters) are bounded here in one place; the
    benchmarks list also declares the bound in its schema."""
    if not request.path.startswith("/api/") or "page" not in request.GET:
        return None
    limit = settings.RIGFIT_API_MAX_PAGE
    for value in request.GET.getlist("page"):
        try:
            page = int(value)
        except ValueError:  # not an integer (or thousands of digits): the API's own validation answers 422
            continue
        if page > limit:
            message = f"Input should be less than or equal to {limit}"
            error = {"loc": ["query", "page"], "msg": message, "type": "less_than_equal"}
            return JsonResponse({"message": "Invalid input.", "errors": [error]}, status=422)
    return None


def _sync_and_async(check: Callable[[HttpRequest], HttpResponse | None]) -> Callable[..., Any]:
    """A middleware factory from a check that answers a request itself (a response) or lets it through (None)."""

    @sync_and_async_middleware
    def factory(get_response: Callable[..., Any]) -> Callable[..., Any]:
        if iscoroutinefunction(get_response):

            async def async_middleware(request: HttpRequest) -> HttpResponse:
                return check(request) or await get_response(request)

            return async_middleware

        def middleware(request: HttpRequest) -> HttpResponse:
            return check(request) or get_response(request)

        return middleware

    factory.__doc__ = check.__doc__
    return factory


def _large_api_body(request: HttpRequest) -> HttpResponse | None:
    """Answer 413 JSON to an API request whose declared body is over DATA_UPLOAD_MAX_MEMORY_SIZE (2 MiB), before
    anything reads it; Django's own refusal is an HTML 400. A body sent without a length is caught where it is
    read (config.api's handler)."""
    if not request.path.startswith("/api/"):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and length > limit:
        return JsonResponse({"message": f"The body is larger than {limit // 1024} KiB."}, status=413)
    return None


def _distrust_forwarded(request: HttpRequest) -> None:
    """Drop X-Forwarded-Proto from a request that did not come from a proxy in RIGFIT_TRUSTED_PROXIES: only those
    may say the client used HTTPS (SECURE_PROXY_SSL_HEADER)."""
    if "HTTP_X_FORWARDED_PROTO" not in request.META:
        return None
    networks = [ipaddress.ip_network(item, strict=False) for item in settings.RIGFIT_TRUSTED_PROXIES]
    try:
        remote = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        remote = None
    if remote is None or not any(remote in network for network in networks):
        del request.META["HTTP_X_FORWARDED_PROTO"]
    return None


@sync_and_async_middleware
def throttle_logins(get_response: Callable[..., Any]) -> Callable[..., Any]:
    """Limit sign-in attempts: RIGFIT_LOGIN_RATE (10 per 15 minutes) per client address and per username, counted
    in the rate limiter's store (shared across workers); an attempt that signs in (a redirect) is refunded, so only
    failures count. Over the limit: 429 with Retry-After before the password is even checked. With the store
    unreachable, sign-in fails closed (503), as submissions do."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            if not _is_login(request):
                return await get_response(request)
            refused, charged = await sync_to_async(_login_charge)(request)
            if refused is not None:
                return refused
            response = await get_response(request)
            await sync_to_async(_login_settle)(response, charged)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        if not _is_login(request):
            return get_response(request)
        refused, charged = _login_charge(request)
        if refused is not None:
            return refused
        response = get_response(request)
        _login_settle(response, charged)
        return response

    return middleware


def _is_login(request: HttpRequest) -> bool:
    return request.method == "POST" and request.path in _login_paths()


def _login_charge(request: HttpRequest) -> tuple[HttpResponse | None, list[str]]:
    from benchmarks import services  # the limiter; imported late, config.middleware loads before the apps

    limit = settings.RIGFIT_LOGIN_RATE
    username = str(request.POST.get("username", "")).strip().lower()[:150]
    charged: list[str] = []
    try:
        charged.append(services.check_rate(scope="login-ip", key=services.client_ip(request), limit=limit))
        if username:
            charged.append(services.check_rate(scope="login-user", key=username, limit=limit))
    except services.RateLimited as exc:
        for key in charged:
            services.refund_rate(key, 1)
        text = "Too many sign-in attempts. Try again later."
        response = HttpResponse(text, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exc.retry_after)
        return response, []
    except services.LimiterUnavailable as exc:
        response = HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exc.retry_after)
        return response, []
    return None, charged


def _login_settle(response: HttpResponse, charged: list[str]) -> None:
    from benchmarks import services

    if response.status_code in (301, 302, 303):  # signed in: not a failure
        for key in charged:
            services.refund_rate(key, 1)


def _login_paths() -> set[str]:
    from django.shortcuts import resolve_url
    from django.urls import reverse

    return {reverse("admin:login"), resolve_url(settings.LOGIN_URL)}


refuse_large_api_bodies = _sync_and_async(_large_api_body)
refuse_huge_api_pages = _sync_and_async(_page_refusal)
distrust_forwarded_headers = _sync_and_async(_distrust_forwarded)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    if not _carries_nul(request):
        return None
    if request.path.startswith("/api/"):
        return JsonResponse({"message": NUL_MESSAGE}, status=422)
    return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain; charset=utf-8")


def _carries_nul(request: HttpRequest) -> bool:
    if NUL in request.path or any(NUL in key or NUL in value for key, value in _pairs(request.GET)):
        return True
    content_type = request.content_type or ""
    if content_type == "application/json":
        try:
            body = request.body
        except RequestDataTooBig:  # the view answers that (413 on the API)
            return False
        if b"\x00" in body:
            return True
        if b"\\u0000" not in body:
            return False
        try:
            return _json_has_nul(json.loads(body))
        except ValueError:  # not JSON after all: the view answers that
            return False
    # Multipart bodies are left to their views: they carry uploads, which a view may refuse by size before reading
    # (the demo's 10 MB image limit), and their text fields go through Django forms, which refuse NUL themselves.
    if content_type == "application/x-www-form-urlencoded":
        try:
            return any(NUL in key or NUL in value for key, value in _pairs(request.POST))
        except (SuspiciousOperation, UnicodeDecodeError):  # too many fields, an undecodable body: the view reports it
            return False
    return False


def _pairs(query: Any) -> list[tuple[str, str]]:
    return [(key, value) for key, values in query.lists() for value in values]


def _json_has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_json_has_nul(k) or _json_has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_json_has_nul(item) for item in value)
    return False
