"""The HTML a follower sees: authorize error page, consent page and the phone page."""

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


PHONE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>公众号模拟器</title>
<style>
body { margin: 0; font: 16px/1.5 -apple-system, "PingFang SC", sans-serif; background: #ededed; }
main { max-width: 480px; margin: 0 auto; display: flex; flex-direction: column; height: 100vh; }
header { background: #f7f7f7; padding: 8px; border-bottom: 1px solid #ddd; }
header select, header button { font-size: 14px; }
#log { flex: 1; overflow-y: auto; padding: 12px; }
.msg { max-width: 80%; margin: 8px 0; padding: 8px 12px; border-radius: 6px;
       white-space: pre-wrap; word-break: break-all; }
.me { background: #95ec69; margin-left: auto; }
.bot { background: #fff; }
.sys { background: none; color: #888; font-size: 13px; text-align: center; margin: 8px auto; }
form { display: flex; gap: 8px; padding: 8px; background: #f7f7f7; border-top: 1px solid #ddd; }
form input { flex: 1; font-size: 16px; padding: 8px; border: 1px solid #ccc; border-radius: 4px; }
form button { font-size: 16px; background: #07c160; color: #fff; border: 0; border-radius: 4px; }
</style></head><body><main>
<header>
  <label>我是 <select id="who"></select></label>
  <button id="new" type="button">新粉丝</button>
  <button id="subscribe" type="button">关注</button>
  <button id="unsubscribe" type="button">取消关注</button>
  <label>模式 <select id="mode">__MODES__</select></label>
</header>
<div id="log"></div>
<form id="send"><input id="text" autocomplete="off" placeholder="发消息">
<button>发送</button></form>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let me = null;

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  return answer.json();
}

function bubble(side, node) {
  const div = document.createElement("div");
  div.className = "msg " + side;
  div.append(node);
  $("log").append(div);
  div.scrollIntoView();
}

// The reply is untrusted: text nodes only, plus <a href="http(s)://...">text</a> anchors.
function render(content) {
  const out = document.createDocumentFragment();
  const anchor = /<a\\s+href=(["'])(https?:\\/\\/[^"'<>\\s]+)\\1\\s*>([\\s\\S]*?)<\\/a>/gi;
  let last = 0;
  for (const match of content.matchAll(anchor)) {
    out.append(content.slice(last, match.index));
    const link = document.createElement("a");
    link.href = match[2].replace(/&amp;/g, "&");
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = match[3];
    link.addEventListener("click", checkAuthorizeLink);
    out.append(link);
    last = match.index + match[0].length;
  }
  out.append(content.slice(last));
  return out;
}

// WeChat's in-app browser refuses an authorize link without #wechat_redirect.
function checkAuthorizeLink(event) {
  const url = new URL(event.currentTarget.href);
  if (url.pathname.endsWith("/connect/oauth2/authorize") && url.hash !== "#wechat_redirect") {
    event.preventDefault();
    bubble("sys", "该链接无法访问（缺少 #wechat_redirect）");
  }
}

async function send(payload, label) {
  bubble("me", label);
  const result = await post("/api/push", {...payload, openid: me.openid, mode: $("mode").value});
  if (result.error) {
    bubble("sys", result.error);
  } else if (result.reply && result.reply.MsgType === "text") {
    bubble("bot", render(result.reply.Content));
  } else if (result.reply) {
    bubble("bot", "[" + result.reply.MsgType + "]");
  }
}

async function choose(body) {
  me = await post("/api/follower", body);
  $("log").textContent = "";
  bubble("sys", "现在你是「" + me.nickname + "」");
}

async function loadFollowers(selected) {
  const data = await (await fetch("/api/followers")).json();
  $("who").textContent = "";
  for (const follower of data.followers) {
    $("who").append(new Option(follower.nickname, follower.openid));
  }
  $("who").value = selected || data.current;
  await choose({openid: $("who").value});
}

$("who").onchange = () => choose({openid: $("who").value});
$("new").onclick = async () => {
  const nickname = prompt("新粉丝的昵称（留空则随机生成）") || null;
  const follower = await post("/api/follower", {nickname});
  await loadFollowers(follower.openid);
};
$("subscribe").onclick = () => send({type: "event", event: "subscribe"}, "[关注了公众号]");
$("unsubscribe").onclick = () => send({type: "event", event: "unsubscribe"}, "[取消关注]");
$("send").onsubmit = (event) => {
  event.preventDefault();
  const content = $("text").value;
  if (!content) return;
  $("text").value = "";
  send({type: "text", content}, content);
};
loadFollowers();
</script></body></html>
"""

MODE_NAMES = {"plain": "明文", "compatible": "兼容", "safe": "安全"}


def phone_page(encrypted: bool) -> str:
    """The chat page; encrypted modes are offered (and the default) only with an AES key."""
    modes = ("safe", "compatible", "plain") if encrypted else ("plain",)
    options = "".join(f'<option value="{mode}">{MODE_NAMES[mode]}</option>' for mode in modes)
    return PHONE.replace("__MODES__", options)
