"""The simulator's static files (simulator/static/): pages, styles, scripts, icons,
and the templates its generated pages and avatars are made from."""

from pathlib import Path
from string import Template

STATIC = Path(__file__).resolve().parent / "static"
# Served as they are under /static/; `*.tmpl` files are templates, never served.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def static_file(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a served file, None for any other name."""
    path = STATIC / name
    if path.parent != STATIC or path.suffix not in TYPES or not path.is_file():
        return None
    return path.read_bytes(), TYPES[path.suffix]


def template(name: str) -> Template:
    """A `$placeholder` template from the static folder (values must be escaped by the caller)."""
    return Template((STATIC / f"{name}.tmpl").read_text(encoding="utf-8"))
