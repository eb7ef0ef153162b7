"""Rendered catalog pages are cached: they change only when the catalog or the community runs change.

Every cached page is keyed by a *data version* that any save or delete in the catalog or benchmarks apps bumps, so
an edit shows at once in the process that made it (and, with a shared cache such as Redis, in every process). With the
default per-process memory cache, other processes see it when their entries expire (PAGE_TTL_S) at the latest.
Pages cached here must not depend on the user: they carry no CSRF token and no session data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

DATA_VERSION_KEY = "rigfit:data-version"
PAGE_TTL_S = 60
CACHED_APPS = frozenset({"catalog", "benchmarks"})


def data_version() -> int:
    version = cache.get(DATA_VERSION_KEY)
    if version is None:
        cache.add(DATA_VERSION_KEY, 1, timeout=None)
        version = cache.get(DATA_VERSION_KEY, 1)
    return version


def bump_data_version(**_: Any) -> None:
    try:
        cache.incr(DATA_VERSION_KEY)
    except ValueError:  # not set yet (or evicted): start a new series that no cached page uses
        cache.set(DATA_VERSION_KEY, 2, timeout=None)


def on_model_change(sender: type, **kwargs: Any) -> None:
    if sender._meta.app_label in CACHED_APPS:
        bump_data_version()


def cached_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serve a GET page from the cache when the same URL (and the same htmx-ness) was rendered for this data."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        is_htmx = bool(request.headers.get("HX-Request"))
        digest = hashlib.sha256(request.get_full_path().encode()).hexdigest()
        key = f"rigfit:page:{data_version()}:{int(is_htmx)}:{digest}"
        stored = cache.get(key)
        if stored is not None:
            content, content_type = stored
            response = HttpResponse(content, content_type=content_type)
        else:
            response = view(request, *args, **kwargs)
            if response.status_code == 200 and not response.streaming and not response.cookies:
                cache.set(key, (response.content, response["Content-Type"]), PAGE_TTL_S)
        patch_vary_headers(response, ["HX-Request"])
        return response

    return wrapper


def cached_api(operation: Callable[..., Any]) -> Callable[..., Any]:
    """The same for a django-ninja GET operation: the value it returns is cached per URL and data version (errors
    are raised, so never cached). functools.wraps keeps the signature ninja reads its parameters from."""

    @wraps(operation)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        digest = hashlib.sha256(request.get_full_path().encode()).hexdigest()
        key = f"rigfit:api:{data_version()}:{digest}"
        found = cache.get(key)
        if found is None:
            found = operation(request, *args, **kwargs)
            cache.set(key, found, PAGE_TTL_S)
        return found

    return wrapper


def data_version_context(request: HttpRequest) -> dict[str, Any]:
    """`data_version` for templates' {% cache %} fragments; the function itself, so templates that never use it
    never read the cache (the template engine calls callables when it resolves them)."""
    return {"data_version": data_version}
