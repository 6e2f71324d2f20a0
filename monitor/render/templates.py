"""The Jinja2 templates: shipped ones, overridden file by file from a user's folder, run in a
sandbox whose every `{{ … }}` output is escaped for its syntax whatever the template does.

Why a user's template cannot un-escape feed text:

- Every value a template prints passes the environment's `finalize`, which escapes it for the
  template's syntax unless it is already safe: a `Trusted` string (our pre-rendered links and
  marked snippets) for text, mrkdwn and Markdown, a `Markup` for HTML. Filters and str methods
  return plain strings, so their results are escaped too; nothing depends on remembering `|e`.
- HTML also autoescapes as usual, and `|safe` is replaced by escaping, so it cannot turn feed
  text into markup; `{% autoescape false %}` still passes `finalize`.
- The sandbox (ImmutableSandboxedEnvironment) hides `_`-attributes, so a template cannot reach
  `Trusted`, `Markup` or any Python internals, nor mutate what it is given.
- Template names that leave the folder (`../../etc/passwd`, `/etc/passwd`, a symlink out) are
  refused with `TemplatePathError`.

Literal text written in a template is the template author's and is left alone."""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from monitor.render.escape import ESCAPERS, Syntax, Trusted, html_escape

SHIPPED = Path(__file__).parent / "templates"

# File names a user's folder may override.
SUBJECT = "subject.txt"
TEXT = "text.txt"
HTML = "email.html"
MARKDOWN = "markdown.md"
SLACK_ENTRY = "slack_entry.mrkdwn"


class RenderError(Exception):
    """A template is broken or refused: permanent, retrying the same message cannot help."""

    permanent = True


class TemplatePathError(RenderError):
    """A template name points outside the template folder."""


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if (
        path.is_absolute()
        or ".." in path.parts
        or "\\" in name
        or "\x00" in name
        or name.startswith("~")
    ):
        raise TemplatePathError(
            f"template {name!r} is refused: names must stay inside the template folder"
        )


class _FolderLoader(jinja2.FileSystemLoader):
    """One folder of templates; refuses any name that would resolve outside it."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder.resolve()

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        _check_name(template)
        source, filename, uptodate = super().get_source(environment, template)
        # a symlink inside the folder may still point out of it
        if not Path(filename).resolve().is_relative_to(self.folder):
            raise TemplatePathError(
                f"template {template!r} is refused: it resolves outside {self.folder}"
            )
        return source, filename, uptodate


def _finalize_html(value: object) -> Markup:
    if value is None:
        return Markup("")
    if isinstance(value, Markup):  # ours, or what autoescaping already produced
        return value
    return html_escape(str(value))


def _finalizer(syntax: Syntax) -> Any:
    if syntax == "html":
        return _finalize_html
    escape = ESCAPERS[syntax]

    def finalize(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, Trusted):
            return value
        return escape(str(value))

    return finalize


@functools.lru_cache(maxsize=64)
def environment(syntax: Syntax, folder: Path | None) -> jinja2.Environment:
    """The sandboxed environment for one syntax: `folder`'s templates first, then the shipped."""
    loaders = [_FolderLoader(folder)] if folder is not None else []
    loaders.append(_FolderLoader(SHIPPED))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=syntax == "html",
        finalize=_finalizer(syntax),
        undefined=jinja2.StrictUndefined,  # a typo in a user's template fails loudly
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,  # an edited template is picked up on the next message
    )
    if syntax == "html":
        env.filters["safe"] = html_escape  # feed text must not become markup by a filter
    return env


def render_template(syntax: Syntax, name: str, folder: Path | None, **context: object) -> str:
    """The template `name` rendered with `context`; RenderError says which template failed."""
    if folder is not None and not folder.is_dir():
        raise RenderError(f"template folder {folder} does not exist")
    try:
        template = environment(syntax, folder).get_template(name)
        return template.render(**context)
    except RenderError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from exc
