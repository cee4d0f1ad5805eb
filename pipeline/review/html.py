"""Static, self-contained HTML pages from Jinja2 templates (``review/templates/*.html.j2``).

Pages carry inline CSS, no script and relative links only, so a folder can be zipped and opened
anywhere. Autoescape is on: every value handed to a template is plain text and comes out escaped
(a run or class named ``<b>`` shows as such); only fragments this module renders are trusted HTML.
Pure: strings out, no file written.

``render`` fills a page template (``report.html.j2``). The helpers below render the building blocks
of ``macros.html.j2`` one at a time, for pages still assembled from fragments (``page``).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["cell", "escape", "heading", "image", "link", "page", "paragraph", "render", "table"]


def cell(value) -> str:
    """Plain-text table cell value: floats to 4 decimals, None to '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pipeline.review", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = cell
    return env


ENV = _environment()
_MACROS = ENV.get_template("macros.html.j2").module


def render(template: str, **context) -> str:
    """The page ``template`` (a file in ``review/templates``) filled with ``context``
    (plain values)."""
    return ENV.get_template(template).render(**context)


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document: ``title`` as heading and ``body`` fragments (already HTML)
    below it."""
    return render("base.html.j2", title=title, body=Markup("\n".join(body)))


def heading(text: str) -> str:
    return str(_MACROS.heading(text))


def paragraph(text: str, css: str | None = None) -> str:
    """A paragraph of plain text (escaped)."""
    return str(_MACROS.paragraph(text, css))


def link(href: str, text: str) -> str:
    return str(_MACROS.link(href, text))


def image(src: str, alt: str) -> str:
    """An image by relative path, linked to itself (click for full size)."""
    return str(_MACROS.image(src, alt))


def table(headers: list[str], rows: Iterable[Iterable]) -> str:
    """A table of plain values (escaped; see ``cell``)."""
    return str(_MACROS.table(headers, rows))
