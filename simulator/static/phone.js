"use strict";
// A follower's phone: WeChat's chat with the official account, driving the simulator's
// /api controls. The chat of each follower is kept for this tab (sessionStorage), so
// coming Back from the bot's pages finds it as it was.

const MODE_NAMES = {plain: "明文", compatible: "兼容", safe: "安全"};
const MEDIA_LABELS = {image: "[图片]", voice: "[语音]", video: "[视频]", music: "[音乐]"};
const TIME_GAP = 5 * 60 * 1000; // WeChat shows the time between messages this far apart
const NO_KEY_NOTE =
  "未配置消息加解密密钥（EncodingAESKey），消息以明文推送。" +
  "模拟器带上 --aes-key 启动后，可切换兼容模式和安全模式。";

const $ = (id) => document.getElementById(id);
let account = null; // {name, headimgurl, modes}
let me = null; // the follower holding the phone
let entries = []; // me's chat: {from: "follower" | "account" | "system", time, ...}
let menu = []; // the account's custom menu: its buttons as created
let writing = false; // the keyboard shown instead of the menu

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  };
  const answer = await fetch(path, init);
  const data = await answer.json();
  if (!answer.ok) throw new Error(data.error || answer.statusText);
  return data;
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- the chat, kept per follower ----------------------------------------------------

const storageKey = (openid) => "phone-chat:" + openid;

function loadEntries(openid) {
  try {
    return JSON.parse(sessionStorage.getItem(storageKey(openid))) || [];
  } catch {
    return [];
  }
}

function persist() {
  sessionStorage.setItem(storageKey(me.openid), JSON.stringify(entries));
}

function renderAll() {
  const log = $("chat-log");
  log.replaceChildren($("mode-note"));
  entries.forEach((entry, index) => log.append(...nodesFor(entry, entries[index - 1])));
  log.scrollTop = log.scrollHeight;
}

function add(entry) {
  const previous = entries[entries.length - 1];
  entries.push(entry);
  persist();
  const nodes = nodesFor(entry, previous);
  $("chat-log").append(...nodes);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return nodes[nodes.length - 1];
}

function nodesFor(entry, previous) {
  const nodes = [];
  if (!previous || entry.time - previous.time > TIME_GAP) {
    const stamp = new Date(entry.time).toLocaleTimeString("zh-CN", {hour: "2-digit", minute: "2-digit"});
    const time = make("p", "time", stamp);
    time.dataset.testid = "message-time";
    nodes.push(time);
  }
  if (entry.from === "system") {
    const tip = make("p", entry.error ? "system system--error" : "system", entry.text);
    tip.dataset.testid = "system-message";
    if (entry.detail) tip.title = entry.detail;
    nodes.push(tip);
  } else if (entry.from === "follower") {
    nodes.push(message("follower", me.headimgurl, [bubble("follower", entry.text)], entry.failed));
  } else {
    const content = replyNodes(entry.reply);
    if (content.length) nodes.push(message("account", account.headimgurl, content));
  }
  return nodes;
}

function message(from, avatarUrl, content, failed) {
  const row = make("div", "message message--" + from);
  row.dataset.testid = "message";
  row.dataset.from = from;
  const avatar = make("img", "message__avatar");
  avatar.src = avatarUrl;
  avatar.alt = "";
  avatar.dataset.testid = "message-avatar";
  row.append(avatar, ...content);
  if (failed) setStatus(row, "failed");
  return row;
}

function bubble(from, content) {
  const box = make("div", "bubble");
  box.dataset.testid = "message-bubble";
  box.dataset.from = from;
  box.append(content);
  return box;
}

function setStatus(row, status) {
  row.querySelector(".status")?.remove();
  if (!status) return;
  const mark = make("span", "status status--" + status, status === "failed" ? "!" : "");
  mark.dataset.testid = "message-status";
  mark.title = status === "failed" ? "发送失败：模拟器没有回应" : "发送中";
  row.append(mark);
}

// -- what the account says ------------------------------------------------------------

function replyNodes(reply) {
  if (reply.MsgType === "text") return [bubble("account", richText(reply.Content || ""))];
  if (reply.MsgType === "news") return [articleCards(reply.Articles || [])];
  const label = MEDIA_LABELS[reply.MsgType];
  return label ? [bubble("account", label)] : []; // a transfer to customer service shows nothing
}

// The reply is untrusted: text nodes, plus <a href="http(s)://...">text</a> as WeChat
// honours them, opening in the same tab like WeChat's in-app browser.
function richText(content) {
  const out = document.createDocumentFragment();
  const anchor = /<a\s+href=(["'])(https?:\/\/[^"'<>\s]+)\1\s*>([\s\S]*?)<\/a>/gi;
  let last = 0;
  for (const match of content.matchAll(anchor)) {
    out.append(content.slice(last, match.index));
    const link = make("a", "", match[3]);
    link.href = match[2].replace(/&amp;/g, "&");
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
    add({from: "system", time: Date.now(), error: true, text: "该链接无法访问（缺少 #wechat_redirect）"});
  }
}

function articleCards(articles) {
  const cards = make("div", "cards");
  cards.dataset.testid = "message-bubble";
  cards.dataset.from = "account";
  for (const article of articles) {
    const card = make(/^https?:\/\//.test(article.Url || "") ? "a" : "div", "card");
    if (card.tagName === "A") card.href = article.Url;
    card.append(make("p", "card__title", article.Title || ""));
    if (article.Description) card.append(make("p", "card__description", article.Description));
    cards.append(card);
  }
  return cards;
}

// -- what the follower does -------------------------------------------------------------

function push(payload) {
  return api("/api/push", {...payload, openid: me.openid, mode: $("mode-switch").value});
}

function showOutcome(result) {
  if (result.error) {
    add({from: "system", time: Date.now(), error: true, text: result.error, detail: result.detail});
  } else if (result.reply) {
    add({from: "account", time: Date.now(), reply: result.reply});
  }
}

async function sendText(text) {
  const entry = {from: "follower", time: Date.now(), text};
  const row = add(entry);
  setStatus(row, "pending");
  try {
    const result = await push({type: "text", content: text});
    setStatus(row, null);
    showOutcome(result);
  } catch {
    entry.failed = true;
    persist();
    setStatus(row, "failed");
  }
}

async function follow(subscribing) {
  const text = subscribing ? "你关注了「" + account.name + "」" : "你已不再关注「" + account.name + "」";
  add({from: "system", time: Date.now(), text});
  me.subscribed = subscribing;
  showFollowing();
  try {
    const result = await push({type: "event", event: subscribing ? "subscribe" : "unsubscribe"});
    if (subscribing) showOutcome(result); // WeChat shows nothing to someone who left
  } catch (error) {
    add({from: "system", time: Date.now(), error: true, text: "模拟器没有回应：" + error.message});
  }
}

// What the footer shows: the follow bar to someone who does not follow; else the menu,
// when the account has one, or the composer (the two switch as WeChat's do).
function showFollowing() {
  const hasMenu = menu.length > 0;
  $("follow-bar").hidden = me.subscribed;
  $("account-menu").hidden = !me.subscribed || !hasMenu || writing;
  $("composer").hidden = !me.subscribed || (hasMenu && !writing);
  $("menu-switch").hidden = !hasMenu;
  $("unsubscribe-button").hidden = !me.subscribed;
}

// -- the account's menu ---------------------------------------------------------------

async function loadMenu() {
  menu = (await api("/api/menu")).button;
  $("menu-buttons").replaceChildren(...menu.map((button, index) => menuItem(button, index)));
}

function menuItem(button, index) {
  const item = make("li", "menu__item");
  const top = make("button", "menu__button", button.name);
  top.type = "button";
  top.dataset.testid = "menu-button";
  item.append(top);
  const subs = button.sub_button || [];
  if (!subs.length) {
    top.addEventListener("click", () => tapMenu([index], button));
    return item;
  }
  const list = make("ul", "menu__sub");
  list.dataset.testid = "menu-submenu";
  list.hidden = true;
  subs.forEach((sub, subIndex) => {
    const entry = make("li");
    const subButton = make("button", "menu__sub-button", sub.name);
    subButton.type = "button";
    subButton.dataset.testid = "menu-sub-button";
    subButton.addEventListener("click", () => tapMenu([index, subIndex], sub));
    entry.append(subButton);
    list.append(entry);
  });
  top.setAttribute("aria-expanded", "false");
  top.addEventListener("click", (event) => {
    event.stopPropagation();
    const opening = list.hidden;
    closeSubmenus();
    list.hidden = !opening;
    top.setAttribute("aria-expanded", String(opening));
  });
  item.append(list);
  return item;
}

function closeSubmenus() {
  document.querySelectorAll(".menu__sub").forEach((list) => { list.hidden = true; });
  document.querySelectorAll(".menu__button[aria-expanded]").forEach((button) => {
    button.setAttribute("aria-expanded", "false");
  });
}

// WeChat pushes VIEW (then opens the link in this same browser, at once) or CLICK (whose
// reply the chat shows). The VIEW push outlives the page it leaves (keepalive).
function tapMenu(path, button) {
  closeSubmenus();
  const tap = {openid: me.openid, button: path, mode: $("mode-switch").value};
  if (button.type === "view") {
    fetch("/api/menu/tap", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(tap),
      keepalive: true,
    });
    location.assign(button.url);
  } else if (button.type === "click") {
    api("/api/menu/tap", tap).then(showOutcome, (error) => {
      add({from: "system", time: Date.now(), error: true, text: "模拟器没有回应：" + error.message});
    });
  } else {
    add({from: "system", time: Date.now(), text: "模拟器只支持“点击”和“跳转网页”两种菜单"});
  }
}

function switchTo(keyboard) {
  writing = keyboard;
  closeSubmenus();
  showFollowing();
  if (keyboard) $("composer-input").focus();
}

// -- who holds the phone ----------------------------------------------------------------

async function choose(openid) {
  me = await api("/api/follower", {openid});
  $("follower-picker").value = me.openid;
  $("follower-avatar").src = me.headimgurl;
  entries = loadEntries(me.openid);
  renderAll();
  showFollowing();
}

async function loadFollowers(selected) {
  const data = await api("/api/followers");
  const picker = $("follower-picker");
  picker.replaceChildren(...data.followers.map((f) => new Option(f.nickname, f.openid)));
  await choose(selected || data.current);
}

function showAccount() {
  document.title = account.name;
  $("account-name").textContent = account.name;
  const modes = $("mode-switch");
  modes.replaceChildren(...account.modes.map((mode) => new Option(MODE_NAMES[mode], mode)));
  const saved = sessionStorage.getItem("phone-mode");
  if (account.modes.includes(saved)) modes.value = saved;
  modes.disabled = account.modes.length < 2;
  modes.title = "消息加解密方式：" + MODE_NAMES[modes.value] + "模式";
  $("mode-note").textContent = account.modes.length < 2 ? NO_KEY_NOTE : "";
}

function wire() {
  const input = $("composer-input");
  input.addEventListener("input", () => {
    $("send-button").disabled = !input.value.trim();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    $("send-button").disabled = true;
    input.focus();
    sendText(text);
  });
  $("keyboard-switch").addEventListener("click", () => switchTo(true));
  $("menu-switch").addEventListener("click", () => switchTo(false));
  document.addEventListener("click", closeSubmenus);
  $("subscribe-button").addEventListener("click", () => follow(true));
  $("unsubscribe-button").addEventListener("click", () => follow(false));
  $("follower-picker").addEventListener("change", (event) => choose(event.target.value));
  $("mode-switch").addEventListener("change", (event) => {
    sessionStorage.setItem("phone-mode", event.target.value);
    event.target.title = "消息加解密方式：" + MODE_NAMES[event.target.value] + "模式";
  });
  $("new-follower-button").addEventListener("click", () => {
    $("new-follower-nickname").value = "";
    $("new-follower-dialog").returnValue = "";
    $("new-follower-dialog").showModal();
  });
  $("new-follower-dialog").addEventListener("close", async () => {
    if ($("new-follower-dialog").returnValue !== "create") return;
    const nickname = $("new-follower-nickname").value.trim() || null;
    const created = await api("/api/follower", {nickname, subscribed: false});
    await loadFollowers(created.openid);
  });
}

async function start() {
  wire();
  account = await api("/api/account");
  showAccount();
  await loadMenu();
  await loadFollowers();
  document.body.dataset.ready = "true"; // for scripts: the chat is on screen
}

start();
