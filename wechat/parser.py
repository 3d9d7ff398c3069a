"""Push body (XML) → WeRoBot message, with a parser that trusts nothing.

lxml is told to load no DTD, expand no entity and touch no network; a body
with a DOCTYPE at all is refused, which rules out billion-laughs and XXE alike.
The body is read as UTF-8 whatever its declaration says. Namespaced elements
(XInclude among them), nesting deeper than WeChat's own and a field given twice
are refused; so are message types WeChat does not send and ids that are not
numbers. The decrypted XML of compatible and safe modes goes through the same.
"""

from __future__ import annotations

from lxml import etree
from werobot.parser import process_message

from wechat.errors import MalformedMessage

_PARSER = etree.XMLParser(
    encoding="utf-8",
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
# WeChat's documented push types; the simulator sends the same set.
MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "shortvideo", "location", "link", "event"}
)
# <xml><SendPicsInfo><PicList><item><PicMd5Sum> is WeChat's deepest: 4 below the root.
MAX_DEPTH = 6
MAX_DIGITS = 20  # a 64-bit MsgId
TIME_DIGITS = 10  # CreateTime: Unix seconds


def parse_fields(body: bytes) -> dict:
    """The <xml> root's children as a dict (nested elements as nested dicts)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise MalformedMessage("body is not well-formed UTF-8 XML") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedMessage("DOCTYPE is not allowed")
    if root.tag != "xml":
        raise MalformedMessage("root element must be <xml>")
    fields = _children(root, 1)
    if len(fields) != len(root):
        raise MalformedMessage("a field is given twice")
    return fields


def to_message(fields: dict, raw: str):
    """A WeRoBot message object, once the fields WeChat always sends are there and
    make sense; `raw` becomes `message.raw`, as WeRoBot sets it."""
    missing = [
        name for name in _REQUIRED if not (isinstance(fields.get(name), str) and fields[name])
    ]
    if missing:
        raise MalformedMessage("missing " + ", ".join(missing))
    msg_type = fields["MsgType"]
    if msg_type not in MESSAGE_TYPES:
        raise MalformedMessage("MsgType is not one WeChat sends")
    if not _is_number(fields["CreateTime"], TIME_DIGITS):
        raise MalformedMessage("CreateTime is not a time in seconds")
    if msg_type == "event":
        if not (isinstance(fields.get("Event"), str) and fields["Event"]):
            raise MalformedMessage("event without Event")
    elif "MsgId" not in fields:
        raise MalformedMessage("missing MsgId")
    if "MsgId" in fields and not _is_number(fields["MsgId"]):
        raise MalformedMessage("MsgId is not a number")
    if msg_type == "text" and not isinstance(fields.get("Content"), str):
        raise MalformedMessage("text without Content")
    return process_message({**fields, "raw": raw})


def _is_number(value, digits: int = MAX_DIGITS) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= digits


def _children(element, depth: int) -> dict:
    if depth > MAX_DEPTH:
        raise MalformedMessage("elements nested too deeply")
    fields: dict = {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag[0] == "{":
            raise MalformedMessage("namespaced elements are not allowed")
        fields[tag] = _children(child, depth + 1) if len(child) else (child.text or "")
    return fields
