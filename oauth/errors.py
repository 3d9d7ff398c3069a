"""Every way talking to WeChat's OAuth API can fail, in one hierarchy.

Messages never carry secrets or tokens: requests' own exceptions quote the URL
(with `secret=`), so they are never chained or echoed.
"""

# Codes that mean "this code is no good, start again with a fresh link".
CODE_REJECTED = frozenset({40029, 40163, 42003})
# Codes that mean "the refresh_token is dead, the follower must authorize again".
REAUTHORIZE = frozenset({40030, 42002, 42007})
# Codes that mean "the access_token is no longer usable" (refresh may fix it).
TOKEN_INVALID = frozenset({40001, 42001})
SYSTEM_BUSY = -1


class OAuthError(Exception):
    """Base of everything the OAuth client raises."""


class WeChatUnavailable(OAuthError):
    """No usable answer: timeout, connection failure, HTTP error or a body that is not JSON."""


class WeChatAPIError(OAuthError):
    """WeChat answered with an errcode. Compare `errcode`, never the errmsg text
    (it ends with a varying `rid` suffix)."""

    def __init__(self, endpoint: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{endpoint}: errcode {errcode}")
        self.endpoint = endpoint
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def code_rejected(self) -> bool:
        return self.errcode in CODE_REJECTED

    @property
    def needs_reauthorization(self) -> bool:
        return self.errcode in REAUTHORIZE

    @property
    def token_invalid(self) -> bool:
        return self.errcode in TOKEN_INVALID

    @property
    def busy(self) -> bool:
        return self.errcode == SYSTEM_BUSY


class AuthorizationFailed(OAuthError):
    """The callback cannot complete; `reason` says why, for the page the follower sees.

    Reasons: state_missing, state_forged, state_expired, state_used (the link is
    spent or bad), denied (the follower refused), code_rejected (40029/40163/42003),
    wechat_failed (WeChat busy, down, slow or talking nonsense), snapshot (a grant from
    WeChat's snapshot page: a virtual follower, to be neither stored nor signed in).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
