// A stand-in for WeChat's JS-SDK (https://res.wx.qq.com/open/js/jweixin-1.6.0.js), served
// by the simulator at the same path. wx.config sends the page's URL (without its #part,
// as WeChat's browser takes it) and the signed parameters to the simulator, which checks
// them against the account's live jsapi_tickets and its JS接口安全域名; then the
// functions given to wx.ready run, or those given to wx.error get {errMsg}, as WeChat's
// own SDK does. A callback registered after the verdict runs at once.
(function () {
  "use strict";
  const simulator = new URL(document.currentScript.src).origin;
  const waiting = {ready: [], error: []};
  let verdict = null; // {ok: boolean, result: {errMsg}}

  function settle(ok, errMsg) {
    verdict = {ok, result: {errMsg}};
    const callbacks = ok ? waiting.ready : waiting.error;
    waiting.ready = [];
    waiting.error = [];
    callbacks.forEach((callback) => callback(verdict.result));
  }

  function config(options) {
    const body = JSON.stringify({
      appId: options.appId,
      timestamp: options.timestamp,
      nonceStr: options.nonceStr,
      signature: options.signature,
      url: location.href.split("#")[0],
    });
    // text/plain keeps it a simple request: no CORS preflight
    fetch(simulator + "/api/jssdk/config", {method: "POST", body, headers: {"Content-Type": "text/plain"}})
      .then((answer) => answer.json())
      .then((data) => settle(data.errMsg === "config:ok", data.errMsg))
      .catch(() => settle(false, "config:fail,network error"));
  }

  function on(kind) {
    return function (callback) {
      if (verdict === null) {
        waiting[kind].push(callback);
      } else if (verdict.ok === (kind === "ready")) {
        callback(verdict.result);
      }
    };
  }

  window.wx = window.jWeixin = {config, ready: on("ready"), error: on("error")};
})();
