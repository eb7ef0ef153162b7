from __future__ import annotations

import pytest
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


def test_the_window_slides_and_says_when():
    check_rate(scope="t", key="k", limit=(1, 60), now=120.0)
    with pytest.raises(RateLimited) as refused:
        check_rate(scope="t", key="k", limit=(1, 60), now=150.0)
    # the request at 120 weighs on the estimate until the window after next begins, at 240
    assert refused.value.retry_after == 90
    with pytest.raises(RateLimited):
        check_rate(scope="t", key="k", limit=(1, 60), now=181.0)  # a fixed window would let this one in
    check_rate(scope="t", key="k", limit=(1, 60), now=240.0)  # refused requests were not counted


def test_a_client_cannot_double_its_limit_across_a_window_boundary():
    for i in range(3):
        check_rate(scope="b", key="k", limit=(3, 60), now=179.0 + i * 0.1)
    with pytest.raises(RateLimited) as refused:
        check_rate(scope="b", key="k", limit=(3, 60), now=180.5)
    # three requests weighted 1 - 0.5/60 leave room for one more once they weigh at most 2: at 200 s
    assert refused.value.retry_after == 20
    with pytest.raises(RateLimited):
        check_rate(scope="b", key="k", limit=(3, 60), now=199.0)
    check_rate(scope="b", key="k", limit=(3, 60), now=200.5)


def test_it_lets_requests_in_up_to_the_limit_within_a_window():
    for i in range(5):
        check_rate(scope="u", key="k", limit=(5, 60), now=61.0 + i)
    with pytest.raises(RateLimited):
        check_rate(scope="u", key="k", limit=(5, 60), now=70.0)
