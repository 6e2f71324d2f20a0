"""Entry links and redirects come from strangers: the fetcher refuses non-public addresses
(issue 7, SSRF) unless polling.allow_networks opens them, and the refusal shows on the feed."""

from __future__ import annotations

import ipaddress
import time

import pytest

from monitor.demo.server import LoopbackServer, Route
from monitor.fetch import FetchLimits
from monitor.netguard import parse_networks, refusal
from tests.test_cli import invoke
from tests.test_fetch import RSS, fetch, fetch_error

STRICT = FetchLimits(connect_timeout=1.0, read_timeout=0.5, total_timeout=5.0)  # the default policy
ONLY_127_0_0_1 = FetchLimits(
    connect_timeout=1.0,
    read_timeout=0.5,
    total_timeout=5.0,
    allow_networks=parse_networks(["127.0.0.1/32"]),
)


@pytest.fixture
def server():
    with LoopbackServer() as s:
        s.routes["/feed.xml"] = Route(body=RSS, content_type="application/rss+xml")
        yield s


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.10.20.30", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address (where cloud metadata services listen)"),
        ("fe80::1", "a link-local address (where cloud metadata services listen)"),
        ("fd00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped IPv6 reaches 127.0.0.1
        ("::ffff:169.254.169.254", "a link-local address (where cloud metadata services listen)"),
        ("0.0.0.0", "a private address"),  # "this host": connects to the local machine
        ("100.64.0.1", "not a public unicast address"),  # carrier-grade NAT
        ("224.0.0.1", "not a public unicast address"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("172.32.0.1", None),  # just outside 172.16/12
        ("2001:4860:4860::8888", None),
    ],
)
def test_only_public_unicast_addresses_may_be_fetched_by_default(address, why):
    assert refusal(ipaddress.ip_address(address)) == why


def test_an_allowed_network_opens_exactly_that_network():
    allow = parse_networks(["10.1.0.0/16", "::1"])
    assert refusal(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert refusal(ipaddress.ip_address("::1"), allow) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allow) == "a private address"
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) == "a loopback address"


def test_a_loopback_url_is_refused_before_any_request_reaches_it(server):
    err = fetch_error(server.url("/feed.xml"), STRICT)
    assert str(err) == (
        f"{server.url('/feed.xml')}: refused: 127.0.0.1 is a loopback address "
        "(allow it with polling.allow_networks in monitor.yaml)"
    )
    assert err.permanent
    assert server.count("/feed.xml") == 0


def test_a_name_that_resolves_to_loopback_is_refused_on_its_address(server):
    url = f"http://localhost:{server.port}/feed.xml"
    err = fetch_error(url, STRICT)
    assert "refused: localhost resolves to" in str(err)
    assert "a loopback address" in str(err)
    assert server.count("/feed.xml") == 0


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 written as one decimal number
        "0x7f.1",  # and in hex, the way inet_aton reads it
        "127.1",
        "[::ffff:127.0.0.1]",
    ],
)
def test_other_spellings_of_loopback_are_refused_too(server, host):
    err = fetch_error(f"http://{host}:{server.port}/feed.xml", STRICT)
    assert "refused:" in str(err) and "a loopback address" in str(err)
    assert server.count("/feed.xml") == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/admin",
        "http://192.168.0.1/",
        "http://[fd00::1]/",
    ],
)
def test_metadata_and_private_addresses_are_refused_without_a_connection_attempt(url):
    started = time.monotonic()
    err = fetch_error(url, STRICT)
    assert "refused:" in str(err)
    assert time.monotonic() - started < 0.5  # no connect timeout was waited for


def test_an_allowlisted_address_is_fetched(server):
    assert fetch(server.url("/feed.xml"), ONLY_127_0_0_1).body == RSS


def test_a_redirect_to_a_refused_address_is_refused_after_the_redirect(server):
    # 127.0.0.1 is allowed, 127.0.0.2 (the same machine) is not: the check runs on every hop.
    server.routes["/hop"] = Route(
        status=302, headers={"Location": f"http://127.0.0.2:{server.port}/feed.xml"}
    )
    err = fetch_error(server.url("/hop"), ONLY_127_0_0_1)
    assert "refused: 127.0.0.2 is a loopback address" in str(err)
    assert server.count("/hop") == 1
    assert server.count("/feed.xml") == 0


def test_a_redirect_within_the_allowed_network_is_followed(server):
    server.routes["/hop"] = Route(status=301, headers={"Location": server.url("/feed.xml")})
    result = fetch(server.url("/hop"), ONLY_127_0_0_1)
    assert result.body == RSS and result.final_url == server.url("/feed.xml")


def test_monitor_feeds_shows_a_refused_entry_link(tmp_path):
    """A feed on an allowed server whose entry points at a metadata address: the page is refused,
    the entry is kept from the feed's own content, and `monitor feeds` says why."""
    item = (
        "<item><title>Look here</title><link>http://169.254.169.254/latest/meta-data/</link>"
        "<guid>x1</guid><description>"
        + "A story told in the feed itself. " * 20
        + "</description></item>"
    )
    rss = f"<rss version='2.0'><channel><title>t</title>{item}</channel></rss>".encode()
    with LoopbackServer() as site:
        site.routes["/feed.xml"] = Route(body=rss, content_type="application/rss+xml")
        config = tmp_path / "config"
        config.mkdir()
        (config / "monitor.yaml").write_text(
            f'database: "sqlite:///{tmp_path}/m.db"\n'
            "polling:\n  connect_timeout: 2s\n  allow_networks: [127.0.0.1/32]\n"
            "extract:\n  workers: 1\n"
        )
        (config / "feeds.yaml").write_text(
            f"outlets:\n  odd:\n    feeds:\n      - url: {site.url('/feed.xml')}\n"
        )
        assert invoke(config, "poll", "--once").exit_code == 0
        shown = invoke(config, "feeds").output
        articles = invoke(config, "articles", "--json").output
    assert "refused: 169.254.169.254 is a link-local address" in " ".join(shown.split())
    assert "Look here" in articles  # stored from the feed's content, not lost
