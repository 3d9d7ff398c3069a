"""The pages WeChat shows in its in-app browser: the authorize error page and the
consent page, from templates in simulator/static/."""

from html import escape

from simulator.assets import template

PERMISSIONS = {
    "snsapi_userinfo": "获得你的公开信息（昵称、头像等）",
    "snsapi_base": "获得你的身份信息",
}


def error_page(errcode: int | None, text: str) -> str:
    """WeChat's in-app error page; the errcode also sits in a meta tag for scripts."""
    shown = "" if errcode is None else str(errcode)
    return template("error.html").substitute(
        errcode=shown, text=escape(text), hidden="" if shown else " hidden"
    )


def consent_page(
    nickname: str, avatar: str, account_name: str, account_avatar: str, scope: str, ticket: str
) -> str:
    """The snsapi_userinfo consent page with allow and deny buttons."""
    values = {
        "nickname": nickname,
        "avatar": avatar,
        "account_name": account_name,
        "account_avatar": account_avatar,
        "scope": scope,
        "permission": PERMISSIONS.get(scope, scope),
        "ticket": ticket,
    }
    return template("consent.html").substitute({k: escape(v) for k, v in values.items()})
