"""WeChat web authorization (网页授权): the client, state, callback flow and token upkeep.

Protocol code only; the web routes in `web/` are thin glue over it.
"""

from oauth.callback import Authorizer
from oauth.client import TokenGrant, WeChatOAuth
from oauth.errors import AuthorizationFailed, OAuthError, WeChatAPIError, WeChatUnavailable
from oauth.lifecycle import Standing, TokenLifecycle, Visit
from oauth.state import StateSigner, derive_key

__all__ = [
    "AuthorizationFailed",
    "Authorizer",
    "OAuthError",
    "Standing",
    "StateSigner",
    "TokenGrant",
    "TokenLifecycle",
    "Visit",
    "WeChatAPIError",
    "WeChatOAuth",
    "WeChatUnavailable",
    "derive_key",
]
