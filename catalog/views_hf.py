"""The "Add a model" page: import a Hugging Face repository, and the moderators' queue of anonymous imports.

The import runs inside the request in bounded steps (catalog.hf.WEB_LIMITS: a few seconds per HTTP call, a cap on
the whole read, a capped GGUF header), so a worker is held at most that long; the page says so. Anonymous imports
wait for a moderator (`ReviewStatus.PENDING`, left out of `Model.objects`); signed-in users' imports show at once,
marked "imported, not reviewed". Imports are rate-limited per client in the "limits" cache.
"""

from __future__ import annotations

import hashlib
import logging
import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from redis.exceptions import RedisError

from catalog.hf import WEB_LIMITS, HubImportError, HubLimits, import_repository, validate_repo_id, validate_revision
from catalog.models import Model, ReviewStatus
from config.clients import client_ip

log = logging.getLogger(__name__)

# Imports per client per hour: anonymous addresses, signed-in users. Settings: RIGFIT_HF_RATE_ANON, RIGFIT_HF_RATE_USER.
DEFAULT_RATE_ANON = 5
DEFAULT_RATE_USER = 30
RATE_WINDOW_S = 3600


class AddModelForm(forms.Form):
    repo_id = forms.CharField(
        label="Hugging Face repository",
        max_length=200,
        help_text="owner/name, e.g. unsloth/gemma-3-270m-it-GGUF, or the repository's address",
        widget=forms.TextInput(attrs={"placeholder": "owner/name", "autocomplete": "off", "spellcheck": "false"}),
    )
    revision = forms.CharField(
        label="Revision", max_length=120, required=False, help_text="A branch, tag or commit; empty for main"
    )

    def clean_repo_id(self) -> str:
        try:
            return validate_repo_id(self.cleaned_data["repo_id"])
        except HubImportError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_revision(self) -> str | None:
        try:
            return validate_revision(self.cleaned_data.get("revision") or None)
        except HubImportError as exc:
            raise forms.ValidationError(str(exc)) from exc


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])


class _RateLimited(Exception):
    pass


class _LimiterDown(Exception):
    pass


def web_limits() -> HubLimits:
    return getattr(settings, "RIGFIT_HF_WEB_LIMITS", WEB_LIMITS)


def _charge(request: HttpRequest) -> None:
    """Count one import against the client (fixed hourly window); raise _RateLimited or _LimiterDown."""
    if request.user.is_authenticated:
        who, limit = f"user:{request.user.pk}", getattr(settings, "RIGFIT_HF_RATE_USER", DEFAULT_RATE_USER)
    else:
        who, limit = f"ip:{client_ip(request)}", getattr(settings, "RIGFIT_HF_RATE_ANON", DEFAULT_RATE_ANON)
    slot = int(time.time() // RATE_WINDOW_S)
    key = f"catalog:hf:rate:{hashlib.sha256(who.encode()).hexdigest()[:32]}:{slot}"
    store = caches["limits"]
    try:
        store.add(key, 0, timeout=RATE_WINDOW_S + 60)
        try:
            count = store.incr(key)
        except ValueError:  # expired between add and incr
            store.set(key, 1, timeout=RATE_WINDOW_S + 60)
            count = 1
    except (RedisError, OSError) as exc:
        log.error("Rate limiter store unreachable; refusing imports: %s", exc)
        raise _LimiterDown from exc
    if count > limit:
        raise _RateLimited


@require_http_methods(["GET", "POST"])
def add_model(request: HttpRequest) -> HttpResponse:
    form = AddModelForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            _charge(request)
            anonymous = not request.user.is_authenticated
            result = import_repository(
                repo_id=form.cleaned_data["repo_id"],
                revision=form.cleaned_data["revision"],
                status=ReviewStatus.PENDING if anonymous else ReviewStatus.UNREVIEWED,
                user=request.user,
                limits=web_limits(),
            )
        except _RateLimited:
            form.add_error(None, "Too many imports from you in the last hour; try again later.")
            status = 429
        except _LimiterDown:
            form.add_error(None, "Imports are paused: the rate limiter is unavailable. Try again in a minute.")
            status = 503
        except HubImportError as exc:
            form.add_error(None, str(exc))
        else:
            model = result.model
            verb = "Imported" if result.created else "Updated"
            messages.success(
                request,
                f"{verb} {model.name}: {len(result.snapshot.quants)} quantizations, "
                f"{model.n_params:,} parameters. {model.provenance}.",
            )
            if model.review_status == ReviewStatus.PENDING:
                return redirect("catalog:add_model")
            return redirect(model.get_absolute_url())
    pending = []
    if request.user.is_staff:
        pending = list(Model.all_objects.filter(review_status=ReviewStatus.PENDING).order_by("imported_at")[:50])
    context = {"form": form, "limits": web_limits(), "pending": pending, "review_form": ReviewForm()}
    if getattr(request, "htmx", False):
        status = 200  # htmx swaps only 2xx answers; the message on the page says what happened
    return render(request, "catalog/add_model.html", context, status=status)


@staff_member_required
@require_POST
def review_import(request: HttpRequest, slug: str) -> HttpResponse:
    """A moderator accepts an anonymous import (it joins the catalog, marked reviewed) or rejects it (deleted)."""
    model = get_object_or_404(Model.all_objects.filter(review_status=ReviewStatus.PENDING), slug=slug)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose accept or reject.")
        return redirect("catalog:add_model")
    if form.cleaned_data["decision"] == "accept":
        model.review_status = ReviewStatus.REVIEWED
        model.save(update_fields=["review_status", "updated_at"])
        messages.success(request, f"Accepted {model.name}; it is in the catalog now.")
    else:
        name = model.name
        model.delete()
        messages.success(request, f"Rejected {name}; it was removed.")
    return redirect("catalog:add_model")
