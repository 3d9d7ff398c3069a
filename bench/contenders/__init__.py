"""WSGI apps the bot's message path is measured against, one module each so that a
worker holds only its own libraries (its RSS is the contender's): gunicorn imports
`bench.contenders.werobot_apps:werobot_default`, `…:werobot_bare`,
`bench.contenders.flask_app:wechatpy_flask` and `bench.contenders.ceiling:ceiling`.

Each answers a text push with the same text reply (`REPLY`, as long as the bot's own:
a greeting and an authorize link). They read the environment the bench gives them:
BENCH_TOKEN, and for safe mode BENCH_AES_KEY and BENCH_APP_ID (no key: plaintext);
safe-mode replies are encrypted by each contender's own library.
"""

import os

TOKEN = os.environ.get("BENCH_TOKEN", "benchtoken")
AES_KEY = os.environ.get("BENCH_AES_KEY", "")
APP_ID = os.environ.get("BENCH_APP_ID", "wxbench0000000001a")
REPLY = (
    "你好！\n点击下面的链接完成网页授权，即可查看你的微信资料：\n"
    '<a href="https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxbench0000000001a'
    "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8888%2Foauth%2Fcallback&response_type=code"
    "&scope=snsapi_userinfo&state=6b0683ad87b7dc23ce1b11705e4574a5ae4e6c2a6eed677da52fbe1e8d"
    '755d2e#wechat_redirect">单击这里体验OAuth授权</a>'
)
