"""The pages followers see: plain Chinese, WeChat's look, made for a phone.

Markup lives in web/templates/, styles and script in web/static/; this module only
chooses the words and fills them in (escaped: see web/render.py).
"""

from __future__ import annotations

import time

import routes
from oauth.profile import has_userinfo
from storage import Follower
from web import assets
from web.render import Markup, join, render

# No configuration key names the account (CONTRACT.md's table has none), so the
# pages call it by what it is.
ACCOUNT = "公众号"
STRANGER = "微信用户"  # whom a silent authorization greets: it shares no nickname
PLACEHOLDER = "avatar.svg"
INFO, WARN = "info.svg", "warn.svg"

# reason → (HTTP status, icon, title, what to do); every one offers a fresh link
FAILURES = {
    "state_missing": (
        400,
        WARN,
        "链接不完整",
        "这个授权链接缺少必要的信息，请重新授权。",
    ),
    "state_forged": (
        400,
        WARN,
        "链接无效",
        "这个授权链接无法识别，请重新授权。",
    ),
    "state_expired": (
        400,
        WARN,
        "链接已过期",
        "这个授权链接已超过有效期，请重新授权。",
    ),
    "state_used": (
        400,
        WARN,
        "链接已使用",
        "这个授权链接已经用过了，请重新授权。",
    ),
    "denied": (
        400,
        INFO,
        "你取消了授权",
        "没有你的授权，我们无法显示你的资料。改变主意的话，可以重新授权。",
    ),
    "code_rejected": (
        400,
        WARN,
        "授权没有完成",
        "每次授权需在 5 分钟内完成，且只能用一次，请重新授权。",
    ),
    "wechat_failed": (
        502,
        WARN,
        "微信暂时没有响应",
        "微信服务器繁忙或暂时无法连接。请稍后刷新本页，或重新授权。",
    ),
}


def failure(reason: str, link: str) -> tuple[int, str]:
    """The page for a callback that could not sign the follower in."""
    status, icon, title, advice = FAILURES[reason]
    return status, _message(icon, title, advice, _button(link, "重新授权"))


def message(status: int, title: str, text: str) -> tuple[int, str]:
    """A plain notice (404, 503...); a missing page points to the follower's own."""
    action = _button(routes.ME, "查看我的资料", primary=False) if status == 404 else Markup("")
    return status, _message(INFO if status < 500 else WARN, title, text, action)


def bad_destination() -> tuple[int, str]:
    """/login asked to go somewhere the bot never sends anyone."""
    return 400, _message(
        WARN,
        "链接地址有误",
        "这个登录链接要前往的地址不在允许范围内。请回到原来的页面或公众号菜单重新进入。",
        _button(routes.ME, "查看我的资料", primary=False),
    )


def snapshot() -> str:
    """WeChat showed the follower a preview of the page (快照页): nobody can sign in
    from it; WeChat's own bar at the bottom leads to the real page."""
    return _message(
        INFO,
        "请使用完整服务",
        "你正在浏览的是页面预览，无法登录。请点击屏幕下方的「使用完整服务」，再继续。",
        Markup(""),
    )


def not_authorized(link: str) -> str:
    return _message(
        INFO,
        "尚未授权",
        "授权后即可在这里看到你的微信资料。",
        _button(link, "微信授权登录"),
    )


def reauthorize(link: str) -> str:
    return _message(
        WARN,
        "授权已失效",
        "你的授权已过期或已被撤销（例如修改了微信密码），请重新授权。",
        _button(link, "重新授权"),
    )


def profile(follower: Follower, offline: bool, upgrade_link: str) -> str:
    """The follower's own page; a silent authorization is offered the fuller one."""
    full = has_userinfo(follower.scope)
    cells = [
        _cell("授权内容", "昵称和头像" if full else "仅基本身份"),
        _cell("授权状态", _standing(follower.refresh_expires_at)),
    ]
    about = "你已用微信授权登录。" if full else "你只分享了基本身份，所以看不到昵称和头像。"
    content = render(
        "profile",
        avatar=_avatar(follower.headimgurl if full else None),
        name=follower.nickname or STRANGER,
        about=about,
        notice=_notice(offline),
        cells=join(cells),
        actions=Markup("") if full else _button(upgrade_link, "授权获取昵称和头像"),
        script=assets.url("avatar.js"),
    )
    return _layout("我的资料", content)


def _message(icon: str, title: str, text: str, actions: Markup) -> str:
    content = render("message", icon=assets.url(icon), title=title, text=text, actions=actions)
    return _layout(title, content)


def _layout(title: str, content: Markup) -> str:
    return render(
        "layout",
        title=title,
        favicon=assets.url("favicon.svg"),
        stylesheet=assets.url("bot.css"),
        content=content,
        account=ACCOUNT,
    )


def _button(href: str, label: str, primary: bool = True) -> Markup:
    kind = "btn_primary" if primary else "btn_default"
    return render("button", href=href, label=label, kind=kind)


def _cell(label: str, value: str) -> Markup:
    return render("cell", label=label, value=value)


def _notice(offline: bool) -> Markup:
    if not offline:
        return Markup("")
    return render("notice", text="暂时无法连接微信，下面是上次获取的资料。")


def _avatar(url: str | None) -> Markup:
    """The follower's avatar, falling back to the placeholder when it cannot load."""
    placeholder = assets.url(PLACEHOLDER)
    usable = url and url.startswith(("https://", "http://"))
    return render("avatar", src=url if usable else placeholder, fallback=placeholder)


def _standing(refresh_expires_at: int) -> str:
    """How long the authorization lasts before the follower must give it again."""
    left = refresh_expires_at - int(time.time())
    if left <= 0:
        return "已过期"
    if left < 86400:
        return f"有效，还剩 {max(1, left // 3600)} 小时"
    return f"有效，还剩 {-(-left // 86400)} 天"
