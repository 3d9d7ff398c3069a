"""wechatpy + Flask, as wechatpy's docs and its examples/echo app show it."""

from flask import Flask, abort, request
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from bench.contenders import AES_KEY, APP_ID, REPLY, TOKEN

wechatpy_flask = Flask(__name__)


@wechatpy_flask.route("/wechat", methods=["GET", "POST"])
def wechat():
    signature = request.args.get("signature", "")
    timestamp = request.args.get("timestamp", "")
    nonce = request.args.get("nonce", "")
    encrypt_type = request.args.get("encrypt_type", "raw")
    msg_signature = request.args.get("msg_signature", "")
    try:
        check_signature(TOKEN, signature, timestamp, nonce)
    except InvalidSignatureException:
        abort(403)
    if request.method == "GET":
        return request.args.get("echostr", "")
    if encrypt_type == "raw":
        msg = parse_message(request.data)
        return create_reply(REPLY if msg.type == "text" else "Sorry", msg).render()
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    try:
        decrypted = crypto.decrypt_message(request.data, msg_signature, timestamp, nonce)
    except (InvalidSignatureException, InvalidAppIdException):
        abort(403)
    msg = parse_message(decrypted)
    reply = create_reply(REPLY if msg.type == "text" else "Sorry", msg)
    return crypto.encrypt_message(reply.render(), nonce, timestamp)
