"""The rendered email as one MIME message: multipart/alternative (text/plain, then text/html,
the preferred part last as RFC 2046 5.1.4 asks), with Message-ID and Date.

Which to hand the sender, this MIME message or the parts to apprise?

Send this message over SMTP (`smtplib.SMTP.send_message`). apprise's email plugin (`mailto://`,
`mailtos://`; read in apprise 2.2, `plugins/email/base.py`) takes one body: with
`body_format=NotifyFormat.HTML` (its default format) it builds multipart/alternative itself and
derives the text/plain part by converting our HTML to text, so our plain-text rendering is lost;
with `NotifyFormat.TEXT` it sends text/plain only. It also stamps its own `Message-ID`
(`make_msgid(domain=smtp_host)`) and `Date` on every attempt, so a retried send cannot carry a
stable Message-ID that lets the receiving side recognise a duplicate. And an HTML body sent
with a text input format is escaped into visible tags (caronc/apprise#1309).
The delivery code can still let apprise parse the user's `mailto://` URL
(`apprise.Apprise.instantiate(url)` exposes host, port, user, password, secure mode, from and
targets) and send this message with smtplib. If it must send through apprise anyway, pass
`body=rendered.html, title=rendered.subject, body_format=NotifyFormat.HTML`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from monitor.render.core import Rendered

_ID_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a safe subset of RFC 5322 dot-atom


def _message_id(key: str | None, domain: str) -> str:
    if not _ID_PART.match(domain):
        raise ValueError(f"message_id_domain {domain!r} is not a plain domain name")
    if key is None:
        return make_msgid(domain=domain)
    if not _ID_PART.match(key):
        raise ValueError(f"message id key {key!r} may hold only letters, digits, '.', '_', '-'")
    return f"<{key}@{domain}>"


def email_message(
    rendered: Rendered,
    *,
    sender: str,
    to: str | Sequence[str],
    message_id_domain: str,
    date: datetime,
    key: str | None = None,
) -> EmailMessage:
    """`rendered` (rendered for "email") as a multipart/alternative message ready for SMTP.

    `key`, when given, makes the Message-ID `<key@message_id_domain>`: pass one unique per
    outbox row, the same on every retry of that row, so a duplicate is recognisable; without it
    the Message-ID is random. Header values with CR or LF raise ValueError (the email policy
    refuses them), so nothing can add a header."""
    if rendered.html is None:
        raise ValueError("email_message needs a message rendered for 'email'")
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    message = EmailMessage()  # email.policy.default: RFC 5322 headers, RFC 2047 for non-ASCII
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = to if isinstance(to, str) else ", ".join(to)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = _message_id(key, message_id_domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to alerts
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
