"""`render`: one message in the form one channel format needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.render import templates as t
from monitor.render.escape import one_line
from monitor.render.limits import Limits
from monitor.render.model import Format, Message
from monitor.render.slack import SlackPayload, slack_payloads
from monitor.render.view import EntryView, message_view


@dataclass(frozen=True)
class Rendered:
    """A rendered message. `subject` and `text` are always set; `html` for email, `markdown`
    for markdown and `slack` (one payload per Slack message, sent in order) for slack."""

    fmt: Format
    subject: str  # one line, no control characters, at most Limits.subject_chars
    text: str  # plain text: the body for text, the text/plain part for email, a fallback else
    html: str | None = None
    markdown: str | None = None
    slack: tuple[SlackPayload, ...] = ()


DEFAULT_LIMITS = Limits()


def render(
    message: Message,
    fmt: Format,
    *,
    templates: Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Rendered:
    """`message` rendered for `fmt` with the shipped templates, each overridden by a file of the
    same name in `templates`; RenderError if a template is broken or refused."""
    text_view = message_view(message, "text")
    subject = one_line(
        t.render_template("text", t.SUBJECT, templates, message=text_view), limits.subject_chars
    )
    text = t.render_template("text", t.TEXT, templates, message=text_view)
    if fmt == "email":
        html_view = message_view(message, "html")
        html = t.render_template("html", t.HTML, templates, message=html_view)
        return Rendered(fmt, subject, text, html=html)
    if fmt == "markdown":
        md_view = message_view(message, "markdown")
        markdown = t.render_template("markdown", t.MARKDOWN, templates, message=md_view)
        return Rendered(fmt, subject, text, markdown=markdown)
    if fmt == "slack":
        slack_view = message_view(message, "mrkdwn")

        def entry_text(entry: EntryView) -> str:
            return t.render_template(
                "mrkdwn", t.SLACK_ENTRY, templates, message=slack_view, entry=entry
            )

        return Rendered(fmt, subject, text, slack=slack_payloads(slack_view, entry_text, limits))
    return Rendered(fmt, subject, text)
