"""Static, self-contained HTML pages: inline CSS, no scripts, relative links only (pure: strings out)."""
from __future__ import annotations

from collections.abc import Iterable
from html import escape

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1300px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; }
.muted { color: #777; } .flag { color: #b00; font-weight: bold; }
.card { margin: 1em 0 2em 0; } .card p { margin: 0.2em 0; }
"""


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document: ``title`` as heading and ``body`` fragments (already HTML) below it."""
    parts = "\n".join(body)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{escape(title)}</h1>\n{parts}\n</body></html>\n")


def heading(text: str) -> str:
    return f"<h2>{escape(text)}</h2>"


def paragraph(text: str, css: str | None = None) -> str:
    """A paragraph of plain text (escaped)."""
    cls = f' class="{css}"' if css else ""
    return f"<p{cls}>{escape(text)}</p>"


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}">{escape(text)}</a>'


def image(src: str, alt: str) -> str:
    """An image by relative path, linked to itself (click for full size)."""
    src = escape(src, quote=True)
    return f'<a href="{src}"><img src="{src}" alt="{escape(alt, quote=True)}" loading="lazy"></a>'


def cell(value) -> str:
    """Plain-text table cell value: floats to 4 decimals, None to '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(headers: list[str], rows: Iterable[Iterable]) -> str:
    """A table of plain values (escaped; see ``cell``)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(v))}</td>" for v in row) + "</tr>\n" for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"
