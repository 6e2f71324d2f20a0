"""Send an email channel's message as our own MIME over SMTP, so the text/plain part and the
stable Message-ID survive (see monitor/render/mail.py for why not through apprise).

The channel URL keeps apprise's syntax, parsed by apprise itself
(`apprise.Apprise.instantiate`), so provider defaults (gmail, fastmail, ...) still apply:

    mailto://[user[:password]@]host[:port][/to...]?to=&from=&name=&smtp=&mode=&cc=&bcc=&reply=

- `mailto://` is plain SMTP, port 25, no TLS at all (apprise's "insecure" mode).
- `mailtos://` is `mode=starttls` by default, port 587; `mode=ssl` is implicit TLS, port 465;
  an explicit `:port` wins. `mode=` works on `mailto://` too.
- `smtp=` names the server (default: the URL's host); `verify=no` skips certificate checks.
- Login happens only when both user and password are given (a user alone names the sender).
- From is `from=` (with `name=`), else user@host; To is the path and `to=`, else the sender;
  `cc=` goes in a Cc header, `bcc=` only in the envelope, `reply=` in Reply-To, `+Header=value`
  adds a header. PGP and attachments are not supported.

Failures (RFC 5321 4.2.1: 4yz transient, 5yz permanent): a network error, a timeout, a
dropped connection or any 4xx reply is retried; a refused login, a 5xx reply, a server without
the STARTTLS or AUTH the URL asks for, a non-ASCII password, or a URL or message we cannot
build is permanent.

Recipients one by one: when the server accepts some recipients (RCPT TO) and refuses others,
the accepted ones have the message once DATA is accepted. The result's `progress` names them
(`recipients_sent`) and those refused with a 5xx (`recipients_refused`, address -> reply); the
sender keeps both on the outbox row, and the next attempt sends only to the rest, with the same
Message-ID and headers (To and Cc still list everyone). A 4xx refusal is retried; once only 5xx
refusals are left the result is permanent, and names them. Error texts never hold the URL, user
or password."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, getaddresses
from typing import Any
from urllib.parse import urlsplit

import apprise

from monitor.notify import SendResult, redact
from monitor.render import Rendered, email_message
from monitor.rules.spec import ChannelSpec

TIMEOUT = 30.0  # seconds per socket operation
SCHEMES = ("mailto", "mailtos")


@dataclass(frozen=True)
class EmailTarget:
    """Where and how to submit mail, as an apprise mailto/mailtos URL describes it."""

    host: str
    port: int
    mode: str  # insecure, starttls or ssl
    user: str | None
    password: str | None = None
    sender: str = ""  # From header, maybe with a display name
    sender_address: str = ""  # the envelope sender
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    verify: bool = True

    def __repr__(self) -> str:
        return f"EmailTarget({self.host}:{self.port}, {self.mode})"  # no password in logs

    @property
    def envelope(self) -> list[str]:
        """Every address that gets the message (To, Cc and Bcc, each once)."""
        to = [address for _, address in getaddresses(list(self.to))]
        return list(dict.fromkeys([*to, *self.cc, *self.bcc]))


def email_target(url: str) -> EmailTarget:
    """The SMTP target of a mailto:// or mailtos:// URL; ValueError if it is not one."""
    if urlsplit(url).scheme.lower() not in SCHEMES:
        raise ValueError("not a mailto:// or mailtos:// URL")
    plugin: Any = apprise.Apprise.instantiate(url)
    if plugin is None or not hasattr(plugin, "smtp_host"):
        raise ValueError("apprise does not understand this email URL")
    names: dict[str, Any] = plugin.names
    name, address = plugin.from_addr
    if name == plugin.app_id:  # apprise's own name, not one the user chose
        name = False

    def named(addr: str) -> str:
        return formataddr((names[addr], addr)) if names.get(addr) else addr

    return EmailTarget(
        host=plugin.smtp_host,
        port=int(plugin.port),
        mode=plugin.secure_mode,
        user=plugin.user,
        password=plugin.password,
        sender=formataddr((name, address)) if name else address,
        sender_address=address,
        to=tuple(formataddr((n, a)) if n else a for n, a in plugin.targets),
        cc=tuple(sorted(plugin.cc)),
        bcc=tuple(sorted(plugin.bcc)),
        reply_to=tuple(named(a) for a in sorted(plugin.reply_to)),
        headers=tuple(plugin.headers.items()),
        verify=bool(plugin.verify_certificate),
    )


def send_email(
    channel: ChannelSpec,
    content: dict[str, Any],
    *,
    now: datetime | None = None,
    timeout: float = TIMEOUT,
) -> SendResult:
    """Submit one outbox message (rendered for "email") over SMTP; never raises for a failure."""
    try:
        target = email_target(channel.url)
        message = _message(target, content, now or datetime.now(UTC))
    except ValueError as e:
        error = redact(f"cannot build the email: {e}", channel.url)
        return SendResult(False, error, permanent=True)
    sent = _addresses(content.get("recipients_sent"))
    refused_before = _refusals(content.get("recipients_refused"))
    to = [a for a in target.envelope if a not in sent and a not in refused_before]
    if not to:  # everyone has it, or was refused for good
        return _outcome(target, sent, refused_before, {}, channel.url)
    try:
        refused = _submit(target, message, to, timeout)
    except smtplib.SMTPRecipientsRefused as e:
        refused = dict(e.recipients)  # every one of them
    except smtplib.SMTPNotSupportedError as e:  # no STARTTLS or AUTH: the URL must change
        return SendResult(False, redact(f"SMTP server: {e}", channel.url), permanent=True)
    except smtplib.SMTPResponseException as e:  # incl. auth, sender refused, DATA refused
        reply = f"SMTP server replied {e.smtp_code} {_text(e.smtp_error)}"
        error = redact(reply.strip(), channel.url)
        return SendResult(False, error, permanent=500 <= e.smtp_code < 600)
    except UnicodeError as e:  # smtplib encodes AUTH as ASCII: a password it cannot send
        error = redact(f"cannot log in: {e}", channel.url)
        return SendResult(False, error, permanent=True)
    except (smtplib.SMTPException, OSError) as e:  # refused, timed out, dropped, TLS failed
        error = redact(f"cannot reach the SMTP server: {type(e).__name__}: {e}", channel.url)
        return SendResult(False, error)
    sent = [*sent, *(a for a in to if a not in refused)]
    return _outcome(target, sent, refused_before, refused, channel.url)


def _outcome(
    target: EmailTarget,
    sent: list[str],
    refused_before: dict[str, str],
    refused_now: dict[str, tuple[int, bytes]],
    url: str,
) -> SendResult:
    """What a send achieved, counting the attempts before it: done when every recipient has
    the message; else retried while a refusal may pass (4xx), else permanent."""
    for_good = {**refused_before}
    for_good |= {a: f"{c} {_text(r)}" for a, (c, r) in refused_now.items() if 500 <= c < 600}
    transient = {a: f"{c} {_text(r)}" for a, (c, r) in refused_now.items() if not 500 <= c < 600}
    if not transient and not for_good:
        return SendResult(True)
    progress = {"recipients_sent": sent, "recipients_refused": for_good}
    detail = "; ".join(f"{a}: {reply}" for a, reply in {**transient, **for_good}.items())
    others = f" (the others have it: {len(sent)} of {len(target.envelope)})" if sent else ""
    error = redact(f"SMTP server refused {detail}{others}", url)
    return SendResult(False, error, permanent=not transient, progress=progress)


def _addresses(value: Any) -> list[str]:
    return [a for a in value if isinstance(a, str)] if isinstance(value, list) else []


def _refusals(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {a: str(reply) for a, reply in value.items() if isinstance(a, str)}


def _message(target: EmailTarget, content: dict[str, Any], now: datetime) -> EmailMessage:
    rendered = Rendered(
        fmt="email",
        subject=str(content.get("subject", "")),
        text=str(content.get("text", "")),
        html=content.get("html"),
    )
    message = email_message(
        rendered,
        sender=target.sender,
        to=target.to,
        message_id_domain=target.sender_address.rpartition("@")[2],
        date=now,
        key=content.get("key"),
    )
    if target.cc:
        message["Cc"] = ", ".join(target.cc)
    if target.reply_to:
        message["Reply-To"] = ", ".join(target.reply_to)
    for name, value in target.headers:
        if name not in message:  # ours (Message-ID, Date, ...) win
            message[name] = value
    return message


def _submit(
    target: EmailTarget, message: EmailMessage, to: list[str], timeout: float
) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context()
    if not target.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    smtp = (
        smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
        if target.mode == "ssl"
        else smtplib.SMTP(target.host, target.port, timeout=timeout)
    )
    try:
        if target.mode == "starttls":
            smtp.starttls(context=context)
        if target.user and target.password:
            smtp.login(target.user, target.password)
        return smtp.send_message(message, from_addr=target.sender_address, to_addrs=to)
    finally:
        # not `with`: its QUIT raises on an odd reply after the message was accepted
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
