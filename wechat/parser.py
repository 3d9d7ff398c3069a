"""Push body (XML) → WeRoBot message, with a parser that trusts nothing.

lxml is told to load no DTD, expand no entity and touch no network; a body
with a DOCTYPE at all is refused, which rules out billion-laughs and XXE alike.
"""

from __future__ import annotations

from lxml import etree
from werobot.parser import process_message

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")


class MalformedMessage(ValueError):
    """The body is not a WeChat message; the text says what is wrong."""


def parse_fields(body: bytes) -> dict:
    """The <xml> root's children as a dict (nested elements as nested dicts)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise MalformedMessage("body is not well-formed XML") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedMessage("DOCTYPE is not allowed")
    if root.tag != "xml":
        raise MalformedMessage("root element must be <xml>")
    return _children(root)


def to_message(fields: dict):
    """A WeRoBot message object, once the fields WeChat always sends are there."""
    missing = [name for name in _REQUIRED if not isinstance(fields.get(name), str)]
    if missing:
        raise MalformedMessage("missing " + ", ".join(missing))
    if not fields["CreateTime"].isdigit():
        raise MalformedMessage("CreateTime is not a number")
    if fields["MsgType"] == "event" and not isinstance(fields.get("Event"), str):
        raise MalformedMessage("event without Event")
    return process_message(dict(fields))


def _children(element) -> dict:
    fields: dict = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        fields[child.tag] = _children(child) if len(child) else (child.text or "")
    return fields
