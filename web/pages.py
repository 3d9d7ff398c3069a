"""The pages followers see, in Chinese, small enough for a phone.
Everything that came from outside is escaped."""

from __future__ import annotations

import time
from html import escape

from oauth.urls import BASE, USERINFO
from storage import Follower

_LAYOUT = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:-apple-system,"PingFang SC","Noto Sans CJK SC",sans-serif;margin:0;
background:#f2f2f2;color:#222}}
main{{max-width:30rem;margin:0 auto;padding:1.5rem 1rem}}
.card{{background:#fff;border-radius:12px;padding:1.25rem;box-shadow:0 1px 3px #0001}}
h1{{font-size:1.3rem;margin:0 0 .75rem}}
p{{line-height:1.6}}
.button{{display:block;text-align:center;background:#07c160;color:#fff;padding:.8rem;
border-radius:8px;text-decoration:none;margin-top:1rem}}
.avatar{{width:96px;height:96px;border-radius:8px;display:block;margin:0 auto 1rem;background:#ddd}}
dl{{display:grid;grid-template-columns:auto 1fr;gap:.4rem .8rem;margin:0}}
dt{{color:#888}} dd{{margin:0;word-break:break-all}}
.notice{{background:#fff7e6;border-radius:8px;padding:.6rem .8rem}}
</style></head>
<body><main><div class="card">{body}</div></main></body></html>"""

# reason → (HTTP status, title, what to do)
FAILURES = {
    "state_missing": (
        400,
        "链接不完整",
        "这个授权链接缺少必要的参数。请回到公众号重新获取授权链接。",
    ),
    "state_forged": (
        400,
        "链接无效",
        "这个授权链接无法识别。请回到公众号发送任意消息，获取新的授权链接。",
    ),
    "state_expired": (
        400,
        "链接已过期",
        "授权链接已超过有效期。请点击下方按钮或回到公众号获取新的链接。",
    ),
    "state_used": (400, "链接已使用", "这个授权链接已经用过了。请点击下方按钮重新授权。"),
    "denied": (
        400,
        "你取消了授权",
        "没有你的授权，我们无法显示你的资料。如果改变主意，可以点击下方按钮重新授权。",
    ),
    "code_rejected": (
        400,
        "授权码无效或已过期",
        "授权码只能使用一次，且5分钟内有效。请点击下方按钮重新授权。",
    ),
    "wechat_failed": (
        502,
        "微信暂时没有响应",
        "微信服务器繁忙或暂时无法连接。请稍后刷新本页重试，或点击下方按钮重新授权。",
    ),
}
SCOPE_NAMES = {
    BASE: f"静默授权（{BASE}）",
    USERINFO: f"用户信息授权（{USERINFO}）",
}


def page(title: str, body: str) -> str:
    return _LAYOUT.format(title=escape(title), body=body)


def _button(link: str, label: str) -> str:
    return f'<a class="button" href="{escape(link)}">{escape(label)}</a>'


def failure(reason: str, link: str) -> tuple[int, str]:
    status, title, advice = FAILURES[reason]
    return status, page(title, f"<h1>{title}</h1><p>{advice}</p>{_button(link, '重新授权')}")


def message(status: int, title: str, text: str) -> tuple[int, str]:
    return status, page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def not_authorized(link: str) -> str:
    return page(
        "尚未授权",
        "<h1>尚未授权</h1><p>授权后即可在这里看到你的微信昵称和头像。</p>"
        + _button(link, "微信授权登录"),
    )


def reauthorize(link: str) -> str:
    return page(
        "需要重新授权",
        "<h1>授权已失效</h1><p>你的授权已过期或已被撤销（例如修改了微信密码）。请重新授权。</p>"
        + _button(link, "重新授权"),
    )


def profile(follower: Follower, offline: bool, upgrade_link: str) -> str:
    nickname = follower.nickname or "（静默授权不含昵称）"
    rows = [
        ("昵称", escape(nickname)),
        ("OpenID", escape(_mask(follower.openid))),
        ("授权方式", escape(SCOPE_NAMES.get(follower.scope, follower.scope))),
        ("令牌状态", escape(_token_state(follower.access_expires_at))),
    ]
    parts = [_avatar(follower.headimgurl), f"<h1>你好，{escape(nickname)}</h1>"]
    if offline:
        parts.append('<p class="notice">暂时无法连接微信，下面是上次获取的资料。</p>')
    parts.append("<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>")
    if follower.scope == BASE:
        parts.append(_button(upgrade_link, "授权获取昵称和头像"))
    return page(f"{nickname} 的资料", "".join(parts))


def _avatar(url: str | None) -> str:
    if not url or not url.startswith(("https://", "http://")):
        return ""
    return f'<img class="avatar" src="{escape(url)}" alt="" referrerpolicy="no-referrer">'


def _mask(openid: str) -> str:
    return openid[:6] + "…" + openid[-4:] if len(openid) > 12 else openid


def _token_state(expires_at: int) -> str:
    left = expires_at - int(time.time())
    if left <= 0:
        return "已过期（下次访问时自动刷新）"
    return f"有效，约 {max(1, left // 60)} 分钟后过期"
