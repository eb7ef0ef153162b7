"""Contributor sign-up with email confirmation (issue #12, defect 5): a new account stays inactive until its owner
follows the link mailed to them; then they sign in at /accounts/login/ and make API tokens.

Thin views on Django's own parts: UserCreationForm (password validators), default_token_generator (the same
one-time-link scheme as password reset: it stops working once the account's state it hashes changes), send_mail.
Sign-ups count against the address's rate limit like submissions do.

Password reset is Django's own flow (PasswordResetView and friends, config/urls.py) with the project's templates;
asking for a reset link is rate limited per client address and per email address, so the form cannot be used to
flood someone's mailbox. Django mails only active accounts with a usable password, and answers the same whether or
not the address is known.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_http_methods

from benchmarks import services

SIGNUP_RATE = (5, 3600)  # sign-ups per client address per hour
RESET_RATE_IP = (5, 3600)  # password reset requests per client address per hour
RESET_RATE_EMAIL = (3, 3600)  # password reset mails per email address per hour


class SignUpForm(UserCreationForm):
    email = forms.EmailField(help_text="We send a link here; the account works once you follow it.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email exists; sign in instead.")
        return email


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        refused = _rate_refusal(request, [("signup", services.client_ip(request), SIGNUP_RATE)])
        if refused is not None:
            return refused
        if form.is_valid():
            user = form.save(commit=False)
            user.is_active = False
            user.save()
            _send_confirmation(request, user)
            return render(request, "registration/signup_sent.html", {"email": user.email}, status=201)
    return render(request, "registration/signup.html", {"form": form}, status=422 if form.errors else 200)


def _rate_refusal(request: HttpRequest, charges: list[tuple[str, str, tuple[int, int]]]) -> HttpResponse | None:
    """Charge each (scope, key, limit); a page answering 429 (with Retry-After) or 503 when one refuses."""
    try:
        for scope, key, limit in charges:
            services.check_rate(scope=scope, key=key, limit=limit)
    except services.RateLimited as exc:
        response = render(request, "benchmarks/rate_limited.html", {"retry_after": exc.retry_after}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except services.LimiterUnavailable as exc:
        response = render(request, "benchmarks/unavailable.html", {"message": str(exc)}, status=503)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return None


_password_reset_view = auth_views.PasswordResetView.as_view(
    email_template_name="registration/password_reset_email.txt",
    subject_template_name="registration/password_reset_subject.txt",
)


@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    """Django's PasswordResetView behind two limits: per client address and per email address asked for."""
    if request.method == "POST":
        email = str(request.POST.get("email", "")).strip().lower()[:254]
        charges = [("password-reset-ip", services.client_ip(request), RESET_RATE_IP)]
        if email:
            charges.append(("password-reset-email", email, RESET_RATE_EMAIL))
        refused = _rate_refusal(request, charges)
        if refused is not None:
            return refused
    return _password_reset_view(request)


def _send_confirmation(request: HttpRequest, user: object) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = request.build_absolute_uri(reverse("confirm_email", kwargs={"uidb64": uid, "token": token}))
    body = render_to_string("registration/confirm_email.txt", {"user": user, "link": link})
    send_mail("Confirm your rigfit account", body, None, [user.email])


@require_GET
def confirm_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    try:
        user = get_user_model().objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))))
    except (ValueError, OverflowError, get_user_model().DoesNotExist) as exc:
        raise Http404("This link is not valid.") from exc
    if user.is_active or not default_token_generator.check_token(user, token):
        raise Http404("This link is not valid or was used already.")
    user.is_active = True
    user.save(update_fields=["is_active"])
    messages.success(request, "Your account is confirmed: sign in to make an API token.")
    return redirect(f"{reverse('login')}?next={reverse('benchmarks:tokens')}")
