from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic.base import RedirectView

from benchmarks import accounts
from config.api import api

urlpatterns = [
    path("", include("catalog.urls")),
    path("benchmarks/", include("benchmarks.urls")),
    path("demo/", include("inference.urls")),
    path("probe/", include("probe.urls")),
    path("api/", api.urls),
    # Contributors sign in here (the admin's own sign-in refuses anyone who is not staff).
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/confirm/<str:uidb64>/<str:token>/", accounts.confirm_email, name="confirm_email"),
    # Password reset: Django's views and their default names, the request form rate limited (benchmarks.accounts).
    path("accounts/password-reset/", accounts.password_reset, name="password_reset"),
    path("accounts/password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<str:uidb64>/<str:token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg", permanent=True)),
]
