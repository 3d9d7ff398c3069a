"""A tiny renderer over string.Template for the files in web/templates/.

Every value is HTML-escaped unless it is `Markup` (a fragment already rendered), so
whatever came from outside (a nickname, a link) can only ever be text.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from string import Template

FOLDER = Path(__file__).resolve().parent / "templates"
TEMPLATES = {path.stem: Template(path.read_text("utf-8")) for path in FOLDER.glob("*.html")}


class Markup(str):
    """HTML that is safe as it is: inserted without escaping."""


def render(template: str, /, **values: str) -> Markup:
    """web/templates/`template`.html with `values` filled in (escaped unless Markup)."""
    filled = {key: v if isinstance(v, Markup) else escape(v) for key, v in values.items()}
    return Markup(TEMPLATES[template].substitute(filled).strip())


def join(fragments: list[Markup]) -> Markup:
    return Markup("\n".join(fragments))
