"""WeRoBot, as the seed's readers would write it and at its fastest."""

from werobot import WeRoBot

from bench.contenders import AES_KEY, APP_ID, REPLY, TOKEN


def _werobot(**settings) -> WeRoBot:
    """A WeRoBot bot answering text with REPLY, with WeRoBot's own crypto in safe mode."""
    crypto = {"encoding_aes_key": AES_KEY, "app_id": APP_ID} if AES_KEY else {}
    robot = WeRoBot(token=TOKEN, **crypto, **settings)

    @robot.text
    def hello(message):
        return REPLY

    return robot


# The seed's bot as its readers would write it: WeRoBot's defaults, so a session in
# SQLite (werobot_session.sqlite3 in the working directory) read and written per push.
werobot_default = _werobot().wsgi
# WeRoBot at its fastest: no session storage.
werobot_bare = _werobot(SESSION_STORAGE=False).wsgi
