"""The HTML WeChat shows in its in-app browser: the authorize error page and consent page."""

from html import escape

HEAD = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{meta}<title>{title}</title>
<style>
body {{ margin: 0; font: 16px/1.5 -apple-system, "PingFang SC", sans-serif; background: #ededed; }}
main {{ max-width: 480px; margin: 0 auto; padding: 24px 16px; }}
.card {{ background: #fff; border-radius: 8px; padding: 20px; }}
button {{ font-size: 16px; padding: 10px 0; width: 100%; border: 0; border-radius: 6px; }}
.allow {{ background: #07c160; color: #fff; margin: 16px 0 8px; }}
.muted {{ color: #888; font-size: 14px; }}
</style></head><body><main>
"""
TAIL = "</main></body></html>\n"

SCOPE_TEXT = {
    "snsapi_userinfo": "获取你的昵称、头像",
    "snsapi_base": "获取你的身份标识（openid）",
}


def error_page(errcode: int | None, text: str) -> str:
    """WeChat's in-app error page; the errcode also sits in a meta tag for scripts."""
    meta = f'<meta name="wechat-errcode" content="{errcode}">\n' if errcode else ""
    code = f'<p class="muted">错误码：{errcode}</p>' if errcode else ""
    return (
        HEAD.format(meta=meta, title="出错了")
        + f'<div class="card"><h2>出错了</h2><p>{escape(text)}</p>{code}</div>'
        + TAIL
    )


def consent_page(nickname: str, scope: str, app_id: str, ticket: str) -> str:
    """The snsapi_userinfo consent page with allow and deny buttons."""
    return (
        HEAD.format(meta="", title="微信授权")
        + '<div class="card"><h2>网页授权</h2>'
        + f'<p>公众号 <span class="muted">{escape(app_id)}</span> 申请获得以下权限：</p>'
        + f"<p><strong>{escape(SCOPE_TEXT.get(scope, scope))}</strong></p>"
        + f'<p class="muted">授权范围：{escape(scope)}</p>'
        + f"<p>当前微信用户：<strong>{escape(nickname)}</strong></p>"
        + '<form method="post" action="/connect/oauth2/authorize/confirm">'
        + f'<input type="hidden" name="ticket" value="{escape(ticket)}">'
        + '<button class="allow" name="decision" value="allow">允许</button>'
        + '<button name="decision" value="deny">拒绝</button>'
        + "</form></div>"
        + TAIL
    )
