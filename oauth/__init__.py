"""WeChat web authorization (网页授权): the client, links, state, sign-in and token upkeep;
and what the same client fetches for the account as a whole: its basic access_token, the
JS-SDK's jsapi_ticket (oauth/jssdk.py) and its custom menu (oauth/menu.py).

Protocol code only: the web routes in `web/` are thin glue over it, and it reaches
persistence only through the small interfaces in `oauth.token_store`.
"""

from oauth.basic_token import BasicToken
from oauth.client import TokenGrant, WeChatOAuth
from oauth.deadline import PAGE_DEADLINE, Deadline
from oauth.errors import AuthorizationFailed, OAuthError, WeChatAPIError, WeChatUnavailable
from oauth.links import AuthorizeLinks
from oauth.sign_in import Browser, SignIn
from oauth.state import StateSigner, derive_key
from oauth.token_store import AccountTokenStore, StateLedger, TokenStore
from oauth.token_upkeep import Standing, TokenUpkeep, Visit

__all__ = [
    "PAGE_DEADLINE",
    "AccountTokenStore",
    "AuthorizationFailed",
    "AuthorizeLinks",
    "BasicToken",
    "Browser",
    "Deadline",
    "OAuthError",
    "SignIn",
    "Standing",
    "StateLedger",
    "StateSigner",
    "TokenGrant",
    "TokenStore",
    "TokenUpkeep",
    "Visit",
    "WeChatAPIError",
    "WeChatOAuth",
    "WeChatUnavailable",
    "derive_key",
]
