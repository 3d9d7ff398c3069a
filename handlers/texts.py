"""What followers read in the chat (Chinese). `{name}` is the follower's nickname,
`{link}` the authorize anchor. A reply is an opening, a line break, then what the link
does for this follower."""

# Openings by kind of message: (for someone we cannot name, for a follower by name)
HELLO = ("你好！", "{name}，你好！")
WELCOME = ("感谢关注！🎉", "欢迎回来，{name}！🎉")
OTHER = ("目前只能回复文字消息哦。", "{name}，目前只能回复文字消息哦。")

# What the link does, by where the follower stands
INVITE = "点击下面的链接完成网页授权，即可查看你的微信资料：\n{link}"  # never authorized
RETURN = "点击下面的链接查看你的资料：\n{link}"  # authorized
LAPSED = "你之前的授权已失效，点击下面的链接重新授权：\n{link}"  # revoked or run out
