"""Which addresses the fetcher may connect to: public ones, plus what the config allows.

Feed URLs come from the user, but entry links and redirects come from strangers: a feed can point
its links at 127.0.0.1, at the LAN, or at a cloud metadata service (169.254.169.254) and have the
daemon fetch them for it (server-side request forgery, issue 7). The check therefore runs where
the connection is made, on every address the host name resolves to, and the connection goes to
the address that was checked. A redirect to another host opens a new connection and is checked
again, and DNS that answers differently between a check and the connect (rebinding) has nothing
to exploit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_HINT = "allow it with polling.allow_networks in monitor.yaml"


class AddressRefused(httpcore.ConnectError):
    """A connection refused by policy; httpx passes it on as the cause of its ConnectError."""


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Networks from config strings ('127.0.0.0/8', '::1', '10.1.2.3'); ValueError on a bad one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def refusal(address: Address, allow: tuple[Network, ...] = ()) -> str | None:
    """Why `address` may not be fetched ('a loopback address'), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    if any(address.version == net.version and address in net for net in allow):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services listen)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or not address.is_global:
        return "not a public unicast address"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, dialling only addresses that `refusal` lets through."""

    def __init__(self, allow: tuple[Network, ...] = ()) -> None:
        self._allow = allow
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        # One refused address refuses the name: a name that resolves to both a public and a
        # private address would otherwise reach the private one whenever it is tried first.
        for address in addresses:
            if reason := refusal(address, self._allow):
                shown = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
                raise AddressRefused(f"refused: {shown} {reason} ({ALLOW_HINT})")
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the name's next address
                error = exc
        assert error is not None  # _resolve never returns an empty list
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(f"refused: unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[Address]:
    """Every address `host` resolves to, in the resolver's order, without repeats."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"could not resolve {host} ({exc})") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"could not resolve {host} (no address)")
    return addresses
