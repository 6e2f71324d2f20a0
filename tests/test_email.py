"""send_email against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from monitor.notify.email import EmailTarget, email_target, send_email
from monitor.render import render
from monitor.render.sample import sample_message
from monitor.rules.spec import ChannelSpec

NOW = datetime(2024, 3, 1, 7, 0, tzinfo=UTC)
PASSWORD = "s3cret-pa55word"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An SMTP handler that keeps what it accepts; `data_replies` answer DATA first, in order."""

    def __init__(
        self, data_replies: tuple[str, ...] = (), refuse: dict[str, str] | None = None
    ) -> None:
        self.messages: list[Envelope] = []
        self.data_replies = list(data_replies)
        self.refuse = refuse or {}  # recipient -> the reply to its RCPT

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(envelope)
        return "250 OK"


def accept_only(password: str) -> Any:
    def authenticator(
        server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    return authenticator


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Starts an aiosmtpd server with the given handler and options; returns its port."""
    controllers: list[Controller] = []

    def start(handler: Inbox, **options: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def outbox_content(key: str = "outbox-17") -> dict[str, Any]:
    """What the outbox stores for an email message, plus the sender's key."""
    rendered = render(sample_message(), "email")
    return {"format": "email", **dataclasses.asdict(rendered), "key": key}


def channel(url: str) -> ChannelSpec:
    return ChannelSpec(name="team-email", url=url, format="email")


def received(inbox: Inbox) -> EmailMessage:
    (envelope,) = inbox.messages
    assert envelope.original_content is not None
    message = message_from_bytes(envelope.original_content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def lf(body: str) -> str:
    """A body as it left the renderer: SMTP carries lines ending CRLF (RFC 5321 2.3.8)."""
    return body.replace("\r\n", "\n").strip()


def test_a_message_arrives_as_text_and_html_with_a_stable_message_id(smtp_server: Any) -> None:
    inbox = Inbox()
    port = smtp_server(inbox)
    url = (
        f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&name=News%20desk"
        "&to=desk@example.org,chief@example.org&cc=legal@example.org&bcc=archive@example.org"
    )
    content = outbox_content()

    result = send_email(channel(url), content, now=NOW)

    assert result.ok, result.error
    message = received(inbox)
    assert message["Subject"] == content["subject"]
    assert message["From"] == "News desk <alerts@monitor.example>"
    assert message["To"] == "desk@example.org, chief@example.org"
    assert message["Cc"] == "legal@example.org"
    assert "Bcc" not in message
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == "<outbox-17@monitor.example>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part for part in message.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert lf(text.get_content()) == content["text"].strip()
    assert html.get_content_type() == "text/html"
    assert lf(html.get_content()) == content["html"].strip()
    assert inbox.messages[0].mail_from == "alerts@monitor.example"
    assert sorted(inbox.messages[0].rcpt_tos) == [
        "archive@example.org",
        "chief@example.org",
        "desk@example.org",
        "legal@example.org",
    ]


def test_a_451_is_retried_and_the_retry_keeps_the_message_id(smtp_server: Any) -> None:
    inbox = Inbox(data_replies=("451 Try again later",))
    port = smtp_server(inbox)
    target = channel(f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=desk@example.org")

    first = send_email(target, outbox_content(), now=NOW)
    second = send_email(target, outbox_content(), now=NOW)

    assert not first.ok and not first.permanent
    assert first.error is not None and "451" in first.error
    assert second.ok, second.error
    assert received(inbox)["Message-ID"] == "<outbox-17@monitor.example>"


def test_a_550_for_the_recipient_is_permanent(smtp_server: Any) -> None:
    port = smtp_server(Inbox(refuse={"nobody@example.org": "550 No such user"}))
    url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=nobody@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and result.permanent
    assert result.error is not None and "550" in result.error


def test_a_recipient_refused_among_accepted_ones_is_reported(smtp_server: Any) -> None:
    inbox = Inbox(refuse={"nobody@example.org": "550 No such user"})
    port = smtp_server(inbox)
    url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=desk@ex.org,nobody@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and result.permanent
    assert result.error is not None and "the others have it" in result.error
    assert inbox.messages[0].rcpt_tos == ["desk@ex.org"]


def with_progress(content: dict[str, Any], result: Any) -> dict[str, Any]:
    """The content as the sender keeps it on the outbox row after this result."""
    return json.loads(json.dumps({**content, **(result.progress or {})}))


def test_a_recipient_refused_for_now_gets_the_retry_and_the_others_do_not(
    smtp_server: Any,
) -> None:
    inbox = Inbox(refuse={"busy@example.org": "450 Mailbox busy"})
    port = smtp_server(inbox)
    url = (
        f"mailto://127.0.0.1:{port}?from=alerts@monitor.example"
        "&to=desk@example.org,busy@example.org&bcc=archive@example.org"
    )
    content = outbox_content()

    first = send_email(channel(url), content, now=NOW)
    inbox.refuse.clear()  # the mailbox is free again
    second = send_email(channel(url), with_progress(content, first), now=NOW)

    assert not first.ok and not first.permanent  # a 4xx: worth a retry
    assert first.error is not None and "busy@example.org: 450" in first.error
    assert first.progress == {
        "recipients_sent": ["desk@example.org", "archive@example.org"],
        "recipients_refused": {},
    }
    assert second.ok, second.error
    assert [sorted(m.rcpt_tos) for m in inbox.messages] == [
        ["archive@example.org", "desk@example.org"],
        ["busy@example.org"],  # only the one that did not have it
    ]
    ids = {message_from_bytes(m.original_content or b"")["Message-ID"] for m in inbox.messages}
    assert ids == {"<outbox-17@monitor.example>"}
    to = message_from_bytes(inbox.messages[1].original_content or b"")["To"]
    assert to == "desk@example.org, busy@example.org"  # the same message, headers and all


def test_a_recipient_refused_for_good_is_permanent_for_it_alone(smtp_server: Any) -> None:
    inbox = Inbox(
        refuse={"nobody@example.org": "550 No such user", "busy@example.org": "451 Later"}
    )
    port = smtp_server(inbox)
    to = "desk@example.org,nobody@example.org,busy@example.org"
    url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to={to}"
    content = outbox_content()

    first = send_email(channel(url), content, now=NOW)
    del inbox.refuse["busy@example.org"]
    second = send_email(channel(url), with_progress(content, first), now=NOW)

    assert not first.ok and not first.permanent  # busy may take it later
    assert first.progress is not None
    assert first.progress["recipients_refused"] == {"nobody@example.org": "550 No such user"}
    # busy got it; nobody was not asked again; what is left can never pass
    assert not second.ok and second.permanent
    assert second.error is not None and "nobody@example.org: 550 No such user" in second.error
    assert "busy" not in second.error and "the others have it: 2 of 3" in second.error
    assert [m.rcpt_tos for m in inbox.messages] == [["desk@example.org"], ["busy@example.org"]]


def test_the_outbox_keeps_who_has_an_email_so_a_retry_sends_it_to_no_one_twice(
    smtp_server: Any, store: Any, clock: Any
) -> None:
    from monitor.config import DeliverySettings
    from monitor.notify import send
    from monitor.sender import send_due
    from monitor.store.delivery import enqueue, route_state

    inbox = Inbox(refuse={"busy@example.org": "452 Too many recipients for now"})
    port = smtp_server(inbox)
    url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=desk@ex.org,busy@example.org"
    channels = {"team-email": channel(url)}
    settings = DeliverySettings()
    content = {k: v for k, v in outbox_content().items() if k != "key"}
    with store.engine.begin() as c:
        state = route_state(c, "troops", "team-email", clock())
        outbox_id = enqueue(c, state, "alert", [], "troops: 3 new articles", content, clock())

    assert send_due(store, channels, settings, "w1", clock(), send) == (0, 1)
    (row,) = store.outbox()
    assert (row.id, row.status) == (outbox_id, "pending")
    assert row.content["recipients_sent"] == ["desk@ex.org"]
    inbox.refuse.clear()
    clock.advance(minutes=1)
    assert send_due(store, channels, settings, "w1", clock(), send) == (1, 0)
    assert store.outbox()[0].status == "sent"
    assert [m.rcpt_tos for m in inbox.messages] == [["desk@ex.org"], ["busy@example.org"]]

    # a recipient refused for good fails the message; `monitor outbox --retry` asks again of
    # that one only (its address may have been fixed), never of those that have it
    inbox.refuse["busy@example.org"] = "550 No such user"
    with store.engine.begin() as c:
        again = enqueue(c, state, "alert", [], "troops: 1 new article", content, clock())
    assert send_due(store, channels, settings, "w1", clock(), send) == (0, 1)
    failed = next(r for r in store.outbox() if r.id == again)
    assert failed.status == "failed" and "busy@example.org: 550" in (failed.last_error or "")
    inbox.refuse.clear()
    assert store.set_outbox_status(again, "pending", clock())
    assert send_due(store, channels, settings, "w1", clock(), send) == (1, 0)
    assert [m.rcpt_tos for m in inbox.messages][2:] == [["desk@ex.org"], ["busy@example.org"]]


def test_a_wrong_password_is_permanent_and_never_shown(smtp_server: Any) -> None:
    inbox = Inbox()
    port = smtp_server(inbox, auth_require_tls=False, authenticator=accept_only("right"))
    url = f"mailto://alerts:{PASSWORD}@monitor.example:{port}?smtp=127.0.0.1&to=desk@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and result.permanent
    assert result.error is not None and "535" in result.error
    assert PASSWORD not in result.error and url not in result.error
    assert inbox.messages == []


def test_a_password_smtplib_cannot_encode_is_permanent(smtp_server: Any) -> None:
    port = smtp_server(Inbox(), auth_require_tls=False, authenticator=accept_only("right"))
    url = f"mailto://alerts:pässwörd@monitor.example:{port}?smtp=127.0.0.1&to=desk@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and result.permanent
    assert result.error is not None and "pässwörd" not in result.error


def test_the_right_password_logs_in_and_sends(smtp_server: Any) -> None:
    inbox = Inbox()
    port = smtp_server(inbox, auth_require_tls=False, authenticator=accept_only(PASSWORD))
    url = f"mailto://alerts:{PASSWORD}@monitor.example:{port}?smtp=127.0.0.1&to=desk@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert result.ok, result.error
    assert received(inbox)["From"] == "alerts@monitor.example"


def test_starttls_asked_of_a_server_without_it_is_permanent(smtp_server: Any) -> None:
    port = smtp_server(Inbox())
    url = f"mailtos://127.0.0.1:{port}?mode=starttls&from=alerts@monitor.example&to=d@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and result.permanent
    assert result.error is not None and "STARTTLS" in result.error


def test_nothing_listening_is_transient() -> None:
    url = f"mailto://127.0.0.1:{free_port()}?from=alerts@monitor.example&to=desk@example.org"

    result = send_email(channel(url), outbox_content(), now=NOW)

    assert not result.ok and not result.permanent
    assert result.error is not None and "cannot reach" in result.error


def test_a_server_that_never_greets_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=desk@example.org"

        result = send_email(channel(url), outbox_content(), now=NOW, timeout=0.2)

    assert not result.ok and not result.permanent
    assert result.error is not None and "timed out" in result.error


def test_a_message_not_rendered_for_email_is_permanent() -> None:
    content = {**outbox_content(), "html": None}

    result = send_email(channel("mailto://127.0.0.1:1?from=a@monitor.example"), content)

    assert not result.ok and result.permanent


def test_a_url_that_is_not_email_is_permanent_and_not_echoed() -> None:
    url = "slack://T000/B000/XXXXXXXXXXXXXXXX"

    result = send_email(channel(url), outbox_content())

    assert not result.ok and result.permanent
    assert result.error is not None and "XXXXXXXXXXXXXXXX" not in result.error


@pytest.mark.parametrize(
    ("url", "host", "port", "mode"),
    [
        ("mailto://user:pw@example.com", "example.com", 25, "insecure"),
        ("mailto://user:pw@example.com:2525", "example.com", 2525, "insecure"),
        ("mailtos://user:pw@example.com", "example.com", 587, "starttls"),
        ("mailtos://user:pw@example.com?mode=ssl", "example.com", 465, "ssl"),
        (
            "mailtos://user:pw@example.com?smtp=smtp.example.org",
            "smtp.example.org",
            587,
            "starttls",
        ),
        ("mailto://user:pw@example.com?mode=starttls", "example.com", 587, "starttls"),
    ],
)
def test_urls_map_to_smtp_targets_as_apprise_reads_them(
    url: str, host: str, port: int, mode: str
) -> None:
    target = email_target(url)

    assert (target.host, target.port, target.mode) == (host, port, mode)
    assert (target.user, target.password) == ("user", "pw")
    assert target.sender == "user@example.com"  # apprise's own name is not used
    assert target.to == ("user@example.com",)  # no recipient: the sender itself


def test_a_target_never_shows_its_password() -> None:
    target = email_target(f"mailtos://user:{PASSWORD}@example.com")

    assert PASSWORD not in repr(target) and isinstance(target, EmailTarget)


def test_the_outbox_sender_sends_email_channels_as_our_own_mime(smtp_server: Any) -> None:
    from monitor.notify import send

    inbox = Inbox()
    port = smtp_server(inbox)
    url = f"mailto://127.0.0.1:{port}?from=alerts@monitor.example&to=desk@example.org"
    assert send(channel(url), outbox_content("outbox-21")).ok
    message = received(inbox)  # not apprise's: our Message-ID and our own text part
    assert message["Message-ID"] == "<outbox-21@monitor.example>"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
