"""Avatars the simulator serves itself, so that pages show them with no internet.

Like WeChat's `headimgurl`, the URL's last segment is the size: 0 (640 px), 46, 64,
96 or 132. Each avatar is an SVG, a colour picked from the owner's id and the first
character of their name, the same every time.
"""

import hashlib
import re
import unicodedata
from html import escape

from simulator.assets import template

PREFIX = "/mmopen/vi_32/"
SIZES = {"0": 640, "46": 46, "64": 64, "96": 96, "132": 132}
DEFAULT_SIZE = "132"
PATH = re.compile(re.escape(PREFIX) + r"([0-9a-f]{40})/(\d+)")
# Dark enough for white text on every one of them.
PALETTE = (
    "#2f7de1", "#1a9b6c", "#d9730d", "#8e56dd", "#d54941",
    "#0b8a9a", "#5e6f9b", "#a25d2e", "#c2185b", "#4d7c0f",
)  # fmt: skip
FOLLOWING = {"\ufe0f", "\u20e3"}  # an emoji's variation selector, a keycap
TAG = re.compile(r"<[^<>]*>")


def avatar_path(avatar_id: str, size: str = DEFAULT_SIZE) -> str:
    """Where the avatar is served, e.g. /mmopen/vi_32/<id>/132."""
    return f"{PREFIX}{avatar_id}/{size}"


def parse_path(path: str) -> tuple[str, int] | None:
    """The avatar id and pixel size in a request path, None when it names no avatar."""
    match = PATH.fullmatch(path)
    if not match or match.group(2) not in SIZES:
        return None
    return match.group(1), SIZES[match.group(2)]


def initial(name: str) -> str:
    """The first character worth showing: markup, punctuation and spaces are skipped;
    an emoji keeps its variation selector."""
    text = TAG.sub("", name)
    for index, ch in enumerate(text):
        if ch.isspace() or unicodedata.category(ch)[0] in "PCZ":
            continue
        end = index + 1
        while end < len(text) and text[end] in FOLLOWING:
            end += 1
        return text[index:end]
    return "?"


def svg(avatar_id: str, name: str, size: int) -> bytes:
    """The avatar as an SVG document of `size` pixels."""
    colour = PALETTE[int(hashlib.sha256(avatar_id.encode()).hexdigest(), 16) % len(PALETTE)]
    text = template("avatar.svg").substitute(
        size=size, colour=colour, letter=escape(initial(name), quote=True)
    )
    return text.encode("utf-8")
