"""The fetch stage: one bounded, polite HTTP GET per call, returning a FetchResult or a FetchError.

Every exchange is capped in time (connect, per-read and total timeouts), in size (decoded body
bytes, so a gzip bomb is cut off after `max_bytes` of output) and in concurrency (overall and per
host). Callers never see a raw httpx exception.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType

import httpcore
import httpx

from monitor.domain import Clock, Conditional, FetchResult, utcnow
from monitor.netguard import AddressRefused, GuardedBackend, Network

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

# Clients kept open at once (one per host); past this, idle hosts' clients are closed.
MAX_CLIENTS = 256

# Only the codings _BoundedDecoder understands; advertising "br" would invite bodies we can't cap.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}

# Statuses that say "not now" rather than "never": timeout, too early, rate limited.
_TRANSIENT_4XX = frozenset({408, 425, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one Fetcher's exchanges; the defaults suit polling public news sites."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # per read, so a stalled server is noticed
    total_timeout: float = 60.0  # the whole exchange, redirects and body included
    max_bytes: int = 5_000_000  # decoded body size; guards against gzip bombs
    max_redirects: int = 5
    max_connections: int = 20
    max_per_host: int = 4
    user_agent: str = "monitor/0.1 (news monitor; +https://github.com/monitor-news/monitor)"
    # Private, loopback and link-local addresses are refused (monitor.netguard); these are not.
    allow_networks: tuple[Network, ...] = ()


class FetchError(Exception):
    """A fetch that produced no usable response; str() is one line naming the URL and the cause."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.permanent = permanent


class _Abort(Exception):
    """Raised inside an exchange; fetch() turns it into a FetchError for the requested URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value, clamped at 0; None when absent or unparseable."""
    # RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds. More than ten digits (over 300
    # years) is treated as garbage rather than as a number the scheduler can't use.
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"-?\d{1,10}", value):
        return float(max(0, int(value)))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime form and "-0000" carry no zone; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def is_permanent(status: int) -> bool:
    """True for 4xx statuses that retrying soon won't fix (all but 408, 425 and 429)."""
    return 400 <= status < 500 and status not in _TRANSIENT_4XX


class Fetcher:
    """Fetches URLs through one small httpx.AsyncClient per host; `async with Fetcher() as f`.

    One client per host rather than one shared client: httpcore's pool scans every pooled
    connection (a getpeername() call each) whenever a request starts or ends, so one pool of
    hundreds of connections made a 1,000-feed cycle quadratic in CPU. A per-host pool holds at
    most max_per_host connections. The clients share one TLS context (loading the CA bundle
    per client would cost ~20 ms and ~1 MB each).
    """

    def __init__(
        self,
        limits: FetchLimits = FetchLimits(),  # noqa: B008 (frozen, so sharing the default is safe)
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.limits = limits
        self._transport = transport
        self._clock = clock
        self._open = False
        self._ssl: ssl.SSLContext | None = None
        # host key -> client, least recently used first (see _client_for)
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._in_flight: Counter[str] = Counter()  # host key -> requests in flight
        self._slots = asyncio.Semaphore(limits.max_connections)
        self._host_slots: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> Fetcher:
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    async def _client_for(self, key: str) -> httpx.AsyncClient:
        """The host's client; past MAX_CLIENTS, idle clients of other hosts are closed."""
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        while len(self._clients) >= MAX_CLIENTS:
            idle = next((k for k in self._clients if not self._busy(k)), None)
            if idle is None:
                break  # every client has a request in flight: go over the cap for now
            await self._clients.pop(idle).aclose()
        client = self._clients[key] = self._make_client()
        return client

    def _busy(self, key: str) -> bool:
        return self._in_flight[key] > 0

    def _make_client(self) -> httpx.AsyncClient:
        """Builds a client with redirect, pool and timeout limits taken from self.limits.

        Proxies named in the environment are not used: the address check must see the address
        the connection goes to."""
        lim = self.limits
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return httpx.AsyncClient(
            transport=self._transport or self._guarded_transport(),
            follow_redirects=True,
            max_redirects=lim.max_redirects,
            timeout=httpx.Timeout(
                connect=lim.connect_timeout,
                read=lim.read_timeout,
                write=lim.read_timeout,
                pool=lim.connect_timeout,
            ),
            headers={"User-Agent": lim.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            event_hooks={"response": [self._guard_redirect]},
        )

    def _guarded_transport(self) -> httpx.AsyncHTTPTransport:
        """httpx's transport, its connections dialled through GuardedBackend."""
        lim, ssl_context = self.limits, self._ssl
        assert ssl_context is not None  # made by _make_client first
        transport = httpx.AsyncHTTPTransport(verify=ssl_context)
        # httpx has no public hook for httpcore's network backend, which is where the address
        # actually dialled is known; its transport keeps the httpcore pool as `_pool`. A test
        # (tests/test_fetch.py, the SSRF cases) fails if this stops taking effect.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=lim.max_per_host,
            max_keepalive_connections=lim.max_per_host,
            keepalive_expiry=httpx.Limits().keepalive_expiry,  # httpx's default, 5 s
            network_backend=GuardedBackend(lim.allow_networks),
        )
        return transport

    async def fetch(
        self, url: str, conditional: Conditional | None = None, accept: str = FEED_ACCEPT
    ) -> FetchResult:
        """GETs `url` (conditionally if validators are given); a 2xx/304 result or FetchError."""
        if not self._open:
            raise RuntimeError("Fetcher.fetch() called outside 'async with Fetcher()'")
        headers = _request_headers(conditional, accept)
        key = _host_key(url)
        # Queueing for a slot doesn't count against total_timeout: that bounds the exchange only.
        # The host slot is taken first so a task never holds a global slot while its host is busy.
        async with self._host_slot(key), self._slots:
            client = await self._client_for(key)
            self._in_flight[key] += 1
            try:
                async with asyncio.timeout(self.limits.total_timeout):
                    return await self._exchange_once_more(client, url, headers, conditional)
            except TimeoutError:
                reason = f"timed out after {self.limits.total_timeout} s (whole exchange)"
                raise FetchError(url, reason) from None
            except _Abort as exc:
                raise FetchError(url, exc.reason) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise _transport_error(url, exc, self.limits) from exc
            finally:
                self._in_flight[key] -= 1

    async def _exchange_once_more(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: httpx.Headers,
        conditional: Conditional | None,
    ) -> FetchResult:
        """The exchange, tried a second time when a kept-alive connection was closed under it.

        A server may close an idle connection just as it is reused (and httpcore can hand out
        one it is about to expire, encode/httpcore#1110); a GET is idempotent (RFC 9110 9.2.2),
        so one retry on a fresh connection is safe and saves the feed a backoff."""
        try:
            return await self._exchange(client, url, headers, conditional)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            return await self._exchange(client, url, headers, conditional)

    def _host_slot(self, key: str) -> asyncio.Semaphore:
        """The semaphore bounding concurrent fetches to one host:port."""
        if key not in self._host_slots:
            self._host_slots[key] = asyncio.Semaphore(self.limits.max_per_host)
        return self._host_slots[key]

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: httpx.Headers,
        conditional: Conditional | None,
    ) -> FetchResult:
        """One GET, redirects followed: 304 with no body, 2xx with a capped body, else raises."""
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                # Read the (empty) body: a response closed unread takes its connection with
                # it, and a warm cycle of 304s would then open a new connection per feed.
                # (A 304 has no body whatever its Content-Length says, RFC 9110 15.4.5.)
                async for _ in response.aiter_raw():
                    pass
                return _result(url, response, b"", conditional)
            if not response.is_success:
                raise _status_error(url, response, self._clock())
            body = await _read_body(response, self.limits.max_bytes)
            return _result(url, response, body, conditional)

    async def _guard_redirect(self, response: httpx.Response) -> None:
        """Stops httpx decoding (or buffering too much of) a redirect body it will discard."""
        # httpx reads every redirect body into memory before following it, decoding it on the
        # way, so a gzip bomb behind a 302 would bypass max_bytes. The body is thrown away
        # anyway: reading it raw keeps it the size it is on the wire.
        if not response.has_redirect_location:
            return
        response.headers.pop("content-encoding", None)
        _reject_declared_size(response, self.limits.max_bytes)


def _host_key(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(url, f"invalid URL ({exc})", permanent=True) from None
    return f"{parsed.host}:{parsed.port or parsed.scheme}"


def _request_headers(conditional: Conditional | None, accept: str) -> httpx.Headers:
    """Accept plus the If-None-Match / If-Modified-Since validators, when there are any."""
    headers = [(b"Accept", accept.encode("ascii"))]
    # Validators are sent back byte for byte; httpx would refuse non-ASCII text.
    if conditional is not None and conditional.etag:
        headers.append((b"If-None-Match", conditional.etag.encode("utf-8")))
    if conditional is not None and conditional.last_modified:
        headers.append((b"If-Modified-Since", conditional.last_modified.encode("utf-8")))
    return httpx.Headers(headers)


def _result(
    url: str, response: httpx.Response, body: bytes, conditional: Conditional | None
) -> FetchResult:
    """The FetchResult for a 2xx or 304; a 304 without validators keeps the ones sent."""
    kept = conditional if conditional and response.status_code == 304 else Conditional()
    wire = response.num_bytes_downloaded + sum(r.num_bytes_downloaded for r in response.history)
    return FetchResult(
        url=url,
        final_url=str(response.url),
        status=response.status_code,
        body=body,
        content_type=response.headers.get("content-type"),
        etag=response.headers.get("etag") or kept.etag,
        last_modified=response.headers.get("last-modified") or kept.last_modified,
        bytes_received=wire,
    )


def _status_error(url: str, response: httpx.Response, now: datetime) -> FetchError:
    """A FetchError for a non-2xx/304 status, with Retry-After honoured on 429 and 503."""
    status = response.status_code
    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
    reason = f"HTTP {status} {response.reason_phrase or _phrase(status)}".rstrip()
    if retry_after is not None:
        reason += f" (retry after {retry_after:.0f} s)"
    return FetchError(
        url, reason, status=status, retry_after=retry_after, permanent=is_permanent(status)
    )


def _phrase(status: int) -> str:
    """The standard reason phrase for `status`, '' for unregistered codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, aborting as soon as it passes `max_bytes`."""
    _reject_declared_size(response, max_bytes)
    decoder = _BoundedDecoder(_content_coding(response), max_bytes)
    chunks = [decoder.decode(raw) async for raw in response.aiter_raw()]
    chunks.append(decoder.flush())
    return b"".join(chunks)


def _reject_declared_size(response: httpx.Response, max_bytes: int) -> None:
    """Raises _Abort early when Content-Length alone already exceeds `max_bytes`."""
    # Content-Length is the encoded size, but decoding never makes a body smaller.
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _Abort(f"response larger than {max_bytes} bytes (Content-Length {declared}), aborted")


def _content_coding(response: httpx.Response) -> str:
    """The response's single content coding ('identity' if none); raises _Abort if unsupported."""
    codings = [
        c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)
    ]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in _WBITS:
        return codings[0]
    raise _Abort(f"unsupported Content-Encoding {', '.join(codings)!r}")


class _BoundedDecoder:
    """Decodes a gzip/deflate/identity body incrementally, raising _Abort past `limit` bytes."""

    # httpx's own decoders inflate each network chunk in full (a 64 KiB chunk of a bomb becomes
    # ~64 MB); zlib's max_length lets us stop one byte past the limit instead.

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding
        self._limit = limit
        self._size = 0
        self._zlib = zlib.decompressobj(_WBITS[coding]) if coding in _WBITS else None

    def decode(self, data: bytes) -> bytes:
        """The decoded bytes for the next raw chunk."""
        if self._zlib is None or not data:
            return self._count(data)
        try:
            # Asking for limit+1 bytes means any input left unconsumed implies an oversize body.
            return self._count(self._zlib.decompress(data, self._limit - self._size + 1))
        except zlib.error as exc:
            if self._coding == "deflate" and self._size == 0:
                # Many servers send raw DEFLATE for "deflate" instead of the zlib format.
                self._coding, self._zlib = "raw deflate", zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data)
            raise _Abort(f"could not decode {self._coding} body ({exc})") from None

    def flush(self) -> bytes:
        """Whatever decoded output is still buffered at the end of the body."""
        return self._count(self._zlib.flush()) if self._zlib is not None else b""

    def _count(self, out: bytes) -> bytes:
        self._size += len(out)
        if self._size > self._limit:
            raise _Abort(f"response larger than {self._limit} bytes (decoded), aborted")
        return out


def _transport_error(url: str, exc: Exception, limits: FetchLimits) -> FetchError:
    """A one-line FetchError for an httpx timeout, connection, redirect or protocol failure."""
    permanent = False
    match exc:
        case httpx.ConnectTimeout():
            reason = f"connect timed out after {limits.connect_timeout} s"
        case httpx.ReadTimeout():
            reason = f"read timed out after {limits.read_timeout} s"
        case httpx.WriteTimeout():
            reason = f"write timed out after {limits.read_timeout} s"
        case httpx.PoolTimeout():
            reason = f"no free connection after {limits.connect_timeout} s"
        case httpx.TooManyRedirects():
            reason = f"too many redirects (>{limits.max_redirects})"
        case httpx.ConnectError() if _caused_by(exc, AddressRefused):
            reason, permanent = str(exc), True
        case httpx.ConnectError() if _caused_by(exc, ConnectionRefusedError):
            reason = "connection refused"
        case httpx.ConnectError():
            reason = f"could not connect ({_detail(exc)})"
        case httpx.UnsupportedProtocol() | httpx.InvalidURL():
            reason, permanent = f"invalid URL ({_detail(exc)})", True
        case httpx.ProtocolError():
            reason = f"protocol error ({_detail(exc)})"
        case httpx.NetworkError():
            reason = f"network error ({_detail(exc)})"
        case _:
            reason = _detail(exc)
    return FetchError(url, reason, permanent=permanent)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if `kind` appears in exc's chain of causes (httpx and anyio wrap the OSError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _detail(exc: BaseException) -> str:
    """The exception's message, or its type name when the message is empty."""
    return str(exc).strip() or type(exc).__name__
