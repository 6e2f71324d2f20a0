"""The fetch stage against a real loopback HTTP server (no mocks)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.domain import Conditional, FetchResult
from monitor.fetch import (
    FEED_ACCEPT,
    PAGE_ACCEPT,
    Fetcher,
    FetchError,
    FetchLimits,
    parse_retry_after,
)
from monitor.netguard import parse_networks
from tests.support import LOOPBACK

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def loopback_limits(**limits: object) -> FetchLimits:
    """Limits that let the fetcher reach the loopback test servers (refused by default)."""
    return FetchLimits(allow_networks=parse_networks(LOOPBACK), **limits)  # type: ignore[arg-type]


FAST = loopback_limits(connect_timeout=1.0, read_timeout=0.5, total_timeout=5.0)
RSS = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as s:
        yield s


def fetch(url: str, limits: FetchLimits = FAST, **kwargs: object) -> FetchResult:
    async def go() -> FetchResult:
        async with Fetcher(limits, clock=lambda: NOW) as fetcher:
            return await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def fetch_error(url: str, limits: FetchLimits = FAST, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, limits, **kwargs)
    return info.value


def fetch_many(urls: list[str], limits: FetchLimits) -> list[FetchResult]:
    async def go() -> list[FetchResult]:
        async with Fetcher(limits) as fetcher:
            return list(await asyncio.gather(*(fetcher.fetch(u) for u in urls)))

    return asyncio.run(go())


def headers_sent(server: LoopbackServer, path: str) -> dict[str, str]:
    """The request headers of the last hit on `path` (a hit is logged just after its reply)."""
    wait_for_hits(server, path, 1)
    return next(h.headers for h in reversed(server.hits) if h.path == path)


def wait_for_hits(server: LoopbackServer, path: str, n: int) -> None:
    for _ in range(200):
        if server.count(path) >= n:
            return
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- success and conditional GET ---------------------------------------------------------------


def test_a_200_returns_the_body_content_type_and_validators(server: LoopbackServer) -> None:
    server.routes["/feed"] = Route(
        body=RSS,
        content_type="application/rss+xml",
        etag='"v1"',
        last_modified="Wed, 01 May 2024 10:00:00 GMT",
    )
    result = fetch(server.url("/feed"))
    assert result.status == 200
    assert result.body == RSS
    assert result.content_type == "application/rss+xml"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 01 May 2024 10:00:00 GMT"
    assert result.url == result.final_url == server.url("/feed")
    assert result.bytes_received == len(RSS)
    assert not result.not_modified


def test_a_conditional_get_sends_the_validators_and_a_304_is_not_modified_with_no_body(
    server: LoopbackServer,
) -> None:
    lm = "Wed, 01 May 2024 10:00:00 GMT"
    server.routes["/feed"] = Route(body=RSS, etag='"v1"', last_modified=lm)
    result = fetch(server.url("/feed"), conditional=Conditional(etag='"v1"', last_modified=lm))
    sent = headers_sent(server, "/feed")
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == lm
    assert result.not_modified
    assert result.status == 304
    assert result.body == b""
    assert result.etag == '"v1"'


def test_304s_and_200s_to_one_host_reuse_its_connection(server: LoopbackServer) -> None:
    """A 304 closed unread would take its connection along: a warm cycle would reconnect."""
    server.routes["/feed"] = Route(body=RSS, etag='"v1"')
    server.routes["/other"] = Route(body=RSS)

    async def go() -> list[bool]:
        async with Fetcher(FAST) as fetcher:
            seen = []
            for url in ("/feed", "/feed", "/other", "/feed"):
                result = await fetcher.fetch(server.url(url), Conditional(etag='"v1"'))
                seen.append(result.not_modified)
            return seen

    assert asyncio.run(go()) == [True, True, False, True]
    assert server.connections == 1


def test_a_304_without_validators_keeps_the_ones_that_were_sent(server: LoopbackServer) -> None:
    server.routes["/feed"] = Route(status=304)
    sent = Conditional(etag='"v7"', last_modified="Tue, 30 Apr 2024 08:00:00 GMT")
    result = fetch(server.url("/feed"), conditional=sent)
    assert result.not_modified
    assert (result.etag, result.last_modified) == (sent.etag, sent.last_modified)


def test_a_changed_feed_answers_a_stale_conditional_get_with_a_full_200(
    server: LoopbackServer,
) -> None:
    server.routes["/feed"] = Route(body=RSS, etag='"v2"')
    result = fetch(server.url("/feed"), conditional=Conditional(etag='"v1"'))
    assert result.status == 200
    assert result.body == RSS
    assert result.etag == '"v2"'


def test_the_user_agent_and_feed_accept_headers_are_sent(server: LoopbackServer) -> None:
    server.routes["/feed"] = Route(body=RSS)
    fetch(server.url("/feed"))
    sent = headers_sent(server, "/feed")
    assert sent["User-Agent"] == FAST.user_agent
    assert sent["Accept"] == FEED_ACCEPT
    assert "If-None-Match" not in sent


def test_a_page_fetch_sends_the_page_accept_header(server: LoopbackServer) -> None:
    server.routes["/article"] = Route(body=b"<html></html>")
    fetch(server.url("/article"), accept=PAGE_ACCEPT)
    assert headers_sent(server, "/article")["Accept"] == PAGE_ACCEPT


def test_a_gzip_body_is_decoded_and_bytes_received_counts_the_compressed_size(
    server: LoopbackServer,
) -> None:
    body = b"<p>news</p>" * 10_000
    server.routes["/page"] = Route(body=body, gzip=True)
    result = fetch(server.url("/page"))
    assert result.body == body
    assert result.bytes_received == len(gzip.compress(body))
    assert result.bytes_received < len(body) // 10


# -- HTTP status errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "permanent", "phrase"),
    [
        (400, True, "Bad Request"),
        (403, True, "Forbidden"),
        (404, True, "Not Found"),
        (410, True, "Gone"),
        (408, False, "Request Timeout"),
        (425, False, "Too Early"),
        (429, False, "Too Many Requests"),
        (500, False, "Internal Server Error"),
        (502, False, "Bad Gateway"),
    ],
)
def test_an_error_status_is_a_fetch_error_that_says_whether_it_is_permanent(
    server: LoopbackServer, status: int, permanent: bool, phrase: str
) -> None:
    server.routes["/feed"] = Route(body=b"nope", status=status)
    err = fetch_error(server.url("/feed"))
    assert str(err) == f"{server.url('/feed')}: HTTP {status} {phrase}"
    assert err.url == server.url("/feed")
    assert err.status == status
    assert err.permanent is permanent
    assert err.retry_after is None


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", 120.0),
        (503, "30", 30.0),
        (429, format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (503, format_datetime(NOW + timedelta(minutes=5), usegmt=True), 300.0),
    ],
)
def test_429_and_503_report_retry_after_in_seconds_and_http_date_form(
    server: LoopbackServer, status: int, header: str, expected: float
) -> None:
    server.routes["/feed"] = Route(status=status, headers={"Retry-After": header})
    err = fetch_error(server.url("/feed"))
    assert err.retry_after == expected
    assert err.permanent is False
    assert str(err).endswith(f"(retry after {expected:.0f} s)")


def test_retry_after_on_other_statuses_is_ignored(server: LoopbackServer) -> None:
    server.routes["/feed"] = Route(status=500, headers={"Retry-After": "60"})
    assert fetch_error(server.url("/feed")).retry_after is None


# -- timeouts ----------------------------------------------------------------------------------


def test_a_body_that_stalls_hits_the_read_timeout(server: LoopbackServer) -> None:
    server.routes["/slow"] = Route(body=RSS, stall_after_headers=3.0)
    err = fetch_error(server.url("/slow"))
    assert str(err) == f"{server.url('/slow')}: read timed out after 0.5 s"
    assert err.status is None
    assert not err.permanent


def test_an_exchange_longer_than_the_total_timeout_is_cut_off(server: LoopbackServer) -> None:
    server.routes["/slow"] = Route(body=RSS, delay=3.0)
    limits = loopback_limits(read_timeout=10.0, total_timeout=0.3)
    err = fetch_error(server.url("/slow"), limits)
    assert str(err) == f"{server.url('/slow')}: timed out after 0.3 s (whole exchange)"


# -- size limits -------------------------------------------------------------------------------


def test_a_body_over_max_bytes_is_rejected_from_its_content_length(
    server: LoopbackServer,
) -> None:
    server.routes["/big"] = Route(body=b"x" * 1001)
    err = fetch_error(server.url("/big"), loopback_limits(max_bytes=1000))
    assert "response larger than 1000 bytes (Content-Length 1001), aborted" in str(err)


def test_a_body_of_exactly_max_bytes_is_accepted(server: LoopbackServer) -> None:
    server.routes["/big"] = Route(body=b"x" * 1000, gzip=True)
    assert fetch(server.url("/big"), loopback_limits(max_bytes=1000)).body == b"x" * 1000


def test_a_gzip_bomb_is_aborted_once_its_decoded_size_passes_max_bytes(
    server: LoopbackServer,
) -> None:
    bomb = gzip.compress(bytes(50_000_000), compresslevel=9)
    server.routes["/bomb"] = Route(raw_gzip_body=bomb)
    err = fetch_error(server.url("/bomb"), loopback_limits(max_bytes=1_000_000))
    assert len(bomb) < 1_000_000  # so only the decoded size can trip the limit
    assert (
        str(err) == f"{server.url('/bomb')}: response larger than 1000000 bytes (decoded), aborted"
    )


def test_a_gzip_bomb_is_never_inflated_far_past_max_bytes_in_memory(
    server: LoopbackServer,
) -> None:
    # Inflating a whole 64 KiB network chunk of this bomb at once would allocate ~50 MB.
    server.routes["/bomb"] = Route(raw_gzip_body=gzip.compress(bytes(50_000_000)))
    tracemalloc.start()
    try:
        fetch_error(server.url("/bomb"), loopback_limits(max_bytes=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


def test_a_corrupt_gzip_body_is_a_fetch_error(server: LoopbackServer) -> None:
    server.routes["/bad"] = Route(raw_gzip_body=b"this is not gzip at all")
    err = fetch_error(server.url("/bad"))
    assert "could not decode gzip body" in str(err)


def test_an_unsupported_content_encoding_is_a_fetch_error(server: LoopbackServer) -> None:
    server.routes["/br"] = Route(body=b"\x0b\x02\x80", headers={"Content-Encoding": "br"})
    assert "unsupported Content-Encoding 'br'" in str(fetch_error(server.url("/br")))


# -- redirects ---------------------------------------------------------------------------------


def test_a_redirect_loop_fails_with_too_many_redirects(server: LoopbackServer) -> None:
    server.routes["/a"] = Route(status=302, location="/b")
    server.routes["/b"] = Route(status=302, location="/a")
    err = fetch_error(server.url("/a"))
    assert str(err) == f"{server.url('/a')}: too many redirects (>5)"
    wait_for_hits(server, "/b", 3)
    assert (server.count("/a"), server.count("/b")) == (3, 3)


def test_a_redirect_chain_within_the_limit_reports_the_final_url(
    server: LoopbackServer,
) -> None:
    for i in range(5):
        server.routes[f"/r{i}"] = Route(status=301, location=f"/r{i + 1}")
    server.routes["/r5"] = Route(body=RSS)
    result = fetch(server.url("/r0"))
    assert result.url == server.url("/r0")
    assert result.final_url == server.url("/r5")
    assert result.body == RSS


def test_a_redirect_body_is_discarded_without_being_decoded(server: LoopbackServer) -> None:
    # Were httpx to decode it, this undecodable "gzip" body would fail the fetch.
    server.routes["/old"] = Route(status=302, location="/new", raw_gzip_body=b"not gzip")
    server.routes["/new"] = Route(body=RSS)
    assert fetch(server.url("/old")).body == RSS


def test_an_oversized_redirect_body_is_rejected(server: LoopbackServer) -> None:
    server.routes["/old"] = Route(status=302, location="/new", body=b"x" * 2000)
    server.routes["/new"] = Route(body=RSS)
    err = fetch_error(server.url("/old"), loopback_limits(max_bytes=1000))
    assert str(err).startswith(f"{server.url('/old')}: response larger than 1000 bytes")


# -- connection failures -----------------------------------------------------------------------


def test_a_refused_connection_gives_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/feed"
    err = fetch_error(url)
    assert str(err) == f"{url}: connection refused"
    assert err.status is None


def test_a_server_that_hangs_up_without_answering_is_a_protocol_error(
    server: LoopbackServer,
) -> None:
    server.routes["/drop"] = Route(drop_connection=True)
    err = fetch_error(server.url("/drop"))
    assert str(err).startswith(f"{server.url('/drop')}: protocol error (")
    assert not err.permanent


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "http://[::1/feed"])
def test_an_unusable_url_is_a_permanent_error(url: str) -> None:
    err = fetch_error(url)
    assert str(err).startswith(f"{url}: invalid URL (")
    assert err.permanent


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_fetches_to_one_host_are_bounded_by_max_per_host(
    server: LoopbackServer,
) -> None:
    server.routes["/slow"] = Route(body=RSS, delay=0.2)
    results = fetch_many([server.url("/slow")] * 10, loopback_limits(max_per_host=2))
    assert [r.status for r in results] == [200] * 10
    assert server.max_in_flight["/slow"] == 2


def test_concurrent_fetches_overall_are_bounded_by_max_connections(
    server: LoopbackServer,
) -> None:
    server.routes["/slow"] = Route(body=RSS, delay=0.2)
    results = fetch_many(
        [server.url("/slow")] * 9, loopback_limits(max_connections=3, max_per_host=9)
    )
    assert len(results) == 9
    assert server.max_in_flight["/slow"] == 3


def test_waiting_for_a_free_connection_does_not_count_against_the_total_timeout(
    server: LoopbackServer,
) -> None:
    server.routes["/slow"] = Route(body=RSS, delay=0.3)
    limits = loopback_limits(max_connections=1, total_timeout=0.8)
    results = fetch_many([server.url("/slow")] * 4, limits)
    assert [r.status for r in results] == [200] * 4


def test_fetch_outside_the_context_manager_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(Fetcher().fetch("http://127.0.0.1:1/"))


# -- Retry-After parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-5", 0.0),
        ("Wed, 01 May 2024 12:02:00 GMT", 120.0),  # IMF-fixdate
        ("Wednesday, 01-May-24 12:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Wed May  1 12:01:00 2024", 60.0),  # obsolete asctime form, zone-less but GMT
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        ("1.5", None),
        ("99999999999999999999", None),
        (None, None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_a_connection_closed_under_one_request_is_retried_once(server: LoopbackServer) -> None:
    calls = []

    def flaky(path: str, headers: dict[str, str]) -> Route:
        calls.append(path)
        if len(calls) == 1:  # the first answer never comes: the socket is closed
            return Route(drop_connection=True)
        return Route(body=b"<rss/>", content_type="application/rss+xml")

    server.routes["/flaky"] = flaky
    result = fetch(server.url("/flaky"))
    assert result.status == 200 and result.body == b"<rss/>"
    assert len(calls) == 2


def test_past_max_clients_an_idle_hosts_client_is_closed_and_made_again(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client per host must not grow without bound over thousands of hosts."""
    import monitor.fetch

    monkeypatch.setattr(monitor.fetch, "MAX_CLIENTS", 1)
    server.routes["/feed"] = Route(body=RSS)

    async def go() -> list[int]:
        with LoopbackServer() as other:
            other.routes["/feed"] = Route(body=RSS)
            async with Fetcher(FAST) as fetcher:
                open_clients = []
                for base in (server, other, server):
                    result = await fetcher.fetch(base.url("/feed"))
                    assert result.body == RSS
                    open_clients.append(len(fetcher._clients))  # noqa: SLF001
                return open_clients

    assert asyncio.run(go()) == [1, 1, 1]
    assert server.connections == 2  # its first client was closed, so it was connected again
