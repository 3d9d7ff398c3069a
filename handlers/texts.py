"""What followers read in the chat (Chinese). `{link}` is the authorize anchor."""

TEXT = "你好！点击下面的链接完成网页授权，即可查看你的微信资料：\n{link}"
WELCOME = "感谢关注！🎉\n点击下面的链接完成网页授权，体验公众号 OAuth 登录：\n{link}"
HELP = "目前只能回复文字消息哦。发送任意文字，或直接点击下面的链接完成授权：\n{link}"
