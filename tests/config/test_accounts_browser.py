"""The contributors' account pages (sign in, sign up, password reset and its steps, with form errors shown) in
Debian's chromium, on a phone and a desktop: each fits the viewport and axe-core reports no serious or critical WCAG 2
A/AA violation (colour contrast included), as tests/test_pages_browser.py checks the main pages."""

from __future__ import annotations

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.browser import chromium_browser
from tests.test_pages_browser import VIEWPORTS, audit

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("pages-browser")]


def check(page, url: str) -> None:
    result = audit(page, url)
    assert result.scroll_width <= result.inner_width, result.describe()
    assert not result.blocking, result.describe()


def send(page) -> None:
    """Submit the form on the page and wait for the answer page to load: reading the page straight after the click
    raced the navigation (CI read an empty document once)."""
    with page.expect_navigation(wait_until="load"):
        page.click("button[type=submit]")


def audit_current(page) -> None:
    """Audit the page as the browser shows it now (after a form was sent), without loading it again."""
    from tests.test_pages_browser import AXE_JS, AXE_TAGS, RUN_AXE

    page.add_script_tag(path=str(AXE_JS))
    violations = [v for v in page.evaluate(RUN_AXE, AXE_TAGS) if v["impact"] in ("serious", "critical")]
    assert not violations, [(v["id"], v["help"], [n["target"] for n in v["nodes"][:3]]) for v in violations]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_account_pages_fit_the_screen_and_pass_axe(live_server, django_user_model, viewport):
    user = django_user_model.objects.create_user(username="ada", email="ada@example.org", password="s3cret-pass-42")
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    reset_link = f"{live_server.url}/accounts/reset/{uid}/{default_token_generator.make_token(user)}/"
    with chromium_browser() as browser:
        # bypass_csp: the site's script-src 'self' would refuse the axe script this test injects (tests/config checks
        # the policy itself).
        context = browser.new_context(viewport=VIEWPORTS[viewport], bypass_csp=True)
        page = context.new_page()
        for path in (
            "/accounts/login/",
            "/accounts/signup/",
            "/accounts/password-reset/",
            "/accounts/password-reset/sent/",
            "/accounts/reset/done/",
            f"/accounts/reset/{uid}/not-a-token/",  # the "link not valid" page
        ):
            check(page, live_server.url + path)

        # Errors as the forms show them: a wrong password, a sign-up that breaks the rules, a weak new password.
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", "wrong")
        send(page)
        assert "correct username and password" in page.content()
        audit_current(page)

        page.goto(f"{live_server.url}/accounts/signup/")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=email]", "ada@example.org")
        page.fill("input[name=password1]", "123")
        page.fill("input[name=password2]", "124")
        send(page)
        assert "bench-error" in page.content()
        audit_current(page)

        check(page, reset_link)  # redirects to the set-password form
        assert page.locator("input[name=new_password1]").count() == 1
        page.fill("input[name=new_password1]", "12345678")
        page.fill("input[name=new_password2]", "12345678")
        send(page)
        assert "bench-error" in page.content()
        audit_current(page)
        context.close()
