"""Rendering: a message (model.Message) becomes what one channel format needs — Slack Block Kit
payloads, an email's subject, plain-text and HTML parts, Markdown or plain text — through
Jinja2 templates a user can override, with every value from a feed made inert in every format.

    rendered = render(message, "email", templates=Path("config/templates"))
    mime = email_message(rendered, sender=..., to=..., message_id_domain=..., date=...)

Templates (in templates/, each overridable by a file of the same name in the user's folder):
subject.txt, text.txt, email.html, markdown.md, slack_entry.mrkdwn. Matched terms are marked
*term* in plain text and Slack, **term** in Markdown and <mark> in HTML."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.render.core import Rendered, render
    from monitor.render.limits import Limits
    from monitor.render.mail import email_message
    from monitor.render.slack import SlackPayload
    from monitor.render.templates import RenderError, TemplatePathError

_WHERE = {
    "Rendered": "core",
    "render": "core",
    "Limits": "limits",
    "email_message": "mail",
    "SlackPayload": "slack",
    "RenderError": "templates",
    "TemplatePathError": "templates",
}


def __getattr__(name: str) -> Any:
    """Load Jinja2 when something is rendered, not whenever the message model is imported (the
    daemon imports the model at start; Jinja2 costs ~9 MB there and in every worker)."""
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"monitor.render.{_WHERE[name]}"), name)


__all__ = [
    "Limits",
    "RenderError",
    "Rendered",
    "SlackPayload",
    "TemplatePathError",
    "email_message",
    "render",
]
