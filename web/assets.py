"""The pages' static files (web/static/): stylesheet, script, icons, placeholder avatar.

Served by the bot itself, never from another host. Each URL carries a fingerprint of
the file's content, so a browser may keep a file long and still sees a new one at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bottle import HTTPError, HTTPResponse, static_file

import routes

FOLDER = Path(__file__).resolve().parent / "static"
KEEP = "public, max-age=604800"  # a week: the fingerprint changes with the content
FINGERPRINTS = {
    path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    for path in sorted(FOLDER.iterdir())
    if path.is_file()
}


def url(name: str) -> str:
    """The URL a page links `name` by (a KeyError for a file that is not there)."""
    return f"{routes.STATIC}/{name}?v={FINGERPRINTS[name]}"


def response(name: str) -> HTTPResponse:
    """The file `name` of the folder (only names listed at start: no path ever reaches
    the disk), else a 404."""
    if name not in FINGERPRINTS:
        return HTTPError(404)
    return static_file(name, root=str(FOLDER), headers={"Cache-Control": KEEP})
