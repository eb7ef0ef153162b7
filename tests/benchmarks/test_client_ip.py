from __future__ import annotations

from django.test import RequestFactory, override_settings

from benchmarks.services import RateLimited, check_rate, client_ip


def request(remote: str, forwarded: str = ""):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().post("/", REMOTE_ADDR=remote, **extra)


def test_it_ignores_forwarded_headers_without_trusted_proxies():
    assert client_ip(request("203.0.113.5", "1.2.3.4")) == "203.0.113.5"


@override_settings(RIGFIT_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_it_takes_the_rightmost_untrusted_address():
    # The client wrote "6.6.6.6" itself; our proxy 10.0.0.2 appended the address it saw, 198.51.100.7.
    assert client_ip(request("10.0.0.2", "6.6.6.6, 198.51.100.7")) == "198.51.100.7"
    assert client_ip(request("10.0.0.2", "198.51.100.7, 10.0.0.9")) == "198.51.100.7"
    assert client_ip(request("203.0.113.5", "6.6.6.6")) == "203.0.113.5"  # not from our proxy: header ignored
    assert client_ip(request("10.0.0.2", "not-an-ip")) == "not-an-ip"


def test_the_window_resets_and_says_when():
    check_rate(scope="t", key="k", limit=(1, 60), now=120.0)
    try:
        check_rate(scope="t", key="k", limit=(1, 60), now=150.0)
    except RateLimited as exc:
        assert exc.retry_after == 31
    else:
        raise AssertionError("expected RateLimited")
    check_rate(scope="t", key="k", limit=(1, 60), now=181.0)  # next window
