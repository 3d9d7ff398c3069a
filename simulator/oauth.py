"""Codes, web access tokens, refresh tokens and basic access tokens, on the simulator clock."""

import secrets
import string
import threading
from dataclasses import dataclass
from typing import Any

from simulator.clock import Clock
from simulator.wxapi import WeChatError

CODE_TTL = 300
REFRESH_TTL = 30 * 86400
BASIC_TTL = 7200
OVERLAP = 300  # a superseded basic token keeps working this long
# stable_token's quotas, as WeChat documents them: 10,000 calls a minute and 500,000 a
# day in all; force_refresh at most 20 times a day, 30 s apart.
STABLE_PER_MINUTE = 10_000
STABLE_PER_DAY = 500_000
FORCE_PER_DAY = 20
FORCE_INTERVAL = 30
MINUTE_QUOTA = 45011  # "api minute-quota reach limit mustslower retry next minute"
DAILY_QUOTA = 45009  # "reach max api daily quota limit"
ALNUM = string.ascii_letters + string.digits


def _token(length: int) -> str:
    """An opaque token of WeChat's usual alphabet."""
    return "".join(secrets.choice(ALNUM + "-_") for _ in range(length))


@dataclass
class Grant:
    """One authorization code."""

    openid: str
    scope: str
    issued_at: float
    used: bool = False
    snapshot: bool = False  # granted on a snapshot page: a virtual account


@dataclass
class Token:
    """A web access token or a refresh token; a refresh token tracks its access token."""

    openid: str
    scope: str
    expires_at: float
    invalidated: bool = False
    access_token: str = ""
    snapshot: bool = False


class OAuthStore:
    """The state behind /sns/*: what WeChat remembers about each authorization."""

    def __init__(self, clock: Clock, app_id: str, app_secret: str) -> None:
        self.clock = clock
        self.app_id = app_id
        self.app_secret = app_secret
        self.access_token_ttl = 7200
        self._codes: dict[str, Grant] = {}
        self._access: dict[str, Token] = {}
        self._refresh: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue_code(self, openid: str, scope: str, snapshot: bool = False) -> str:
        """A fresh single-use code for the follower's consent (or a snapshot page's)."""
        code = "0" + "".join(secrets.choice(ALNUM) for _ in range(31))
        with self._lock:
            self._codes[code] = Grant(openid, scope, self.clock.now(), snapshot=snapshot)
        return code

    def exchange(self, params: dict[str, str]) -> dict[str, Any]:
        """/sns/oauth2/access_token: code → tokens, checked in WeChat's order."""
        self._check_app(params, with_secret=True)
        if params.get("grant_type") != "authorization_code":
            raise WeChatError(40002)
        if not params.get("code"):
            raise WeChatError(41008)
        with self._lock:
            grant = self._codes.get(params["code"])
            if grant is None:
                raise WeChatError(40029)
            if grant.used:
                raise WeChatError(40163)
            if self.clock.now() - grant.issued_at > CODE_TTL:
                raise WeChatError(42003)
            grant.used = True
            return self._issue(grant)

    def _issue(self, grant: Grant) -> dict[str, Any]:
        """A new access token and refresh token pair (lock held)."""
        now = self.clock.now()
        access, refresh = _token(88), _token(88)
        self._access[access] = Token(
            grant.openid, grant.scope, now + self.access_token_ttl, snapshot=grant.snapshot
        )
        self._refresh[refresh] = Token(
            grant.openid,
            grant.scope,
            now + REFRESH_TTL,
            access_token=access,
            snapshot=grant.snapshot,
        )
        body = self._body(access, refresh)
        if grant.snapshot:  # only the code exchange says so, never a refresh or userinfo
            body["is_snapshotuser"] = 1
        return body

    def _body(self, access: str, refresh: str) -> dict[str, Any]:
        token = self._access[access]
        return {
            "access_token": access,
            "expires_in": self.access_token_ttl,
            "refresh_token": refresh,
            "openid": token.openid,
            "scope": token.scope,
        }

    def refresh(self, params: dict[str, str]) -> dict[str, Any]:
        """/sns/oauth2/refresh_token: renews a live access token, replaces an expired one."""
        self._check_app(params, with_secret=False)
        if params.get("grant_type") != "refresh_token":
            raise WeChatError(40002)
        if not params.get("refresh_token"):
            raise WeChatError(41003)
        with self._lock:
            refresh = self._refresh.get(params["refresh_token"])
            if refresh is None:
                raise WeChatError(40030)
            if refresh.invalidated:
                raise WeChatError(42007)
            now = self.clock.now()
            if now >= refresh.expires_at:
                raise WeChatError(42002)
            access = self._access[refresh.access_token]
            if now < access.expires_at:
                access.expires_at = now + self.access_token_ttl
            else:
                refresh.access_token = _token(88)
                self._access[refresh.access_token] = Token(
                    refresh.openid,
                    refresh.scope,
                    now + self.access_token_ttl,
                    snapshot=refresh.snapshot,
                )
            return self._body(refresh.access_token, params["refresh_token"])

    def check_access(self, params: dict[str, str]) -> Token:
        """The live token named by access_token, for the openid the caller names."""
        if not params.get("access_token"):
            raise WeChatError(41001)
        if not params.get("openid"):
            raise WeChatError(41009)
        with self._lock:
            token = self._access.get(params["access_token"])
        if token is None or token.invalidated:
            raise WeChatError(40001)
        if self.clock.now() >= token.expires_at:
            raise WeChatError(42001)
        if token.openid != params["openid"]:
            raise WeChatError(40003)
        return token

    def _check_app(self, params: dict[str, str], with_secret: bool) -> None:
        if not params.get("appid"):
            raise WeChatError(41002)
        if params["appid"] != self.app_id:
            raise WeChatError(40013)
        if with_secret and not params.get("secret"):
            raise WeChatError(41004)
        if with_secret and params["secret"] != self.app_secret:
            raise WeChatError(40125)

    def expire(self, kind: str, openid: str | None = None) -> None:
        """Age `access` or `refresh` tokens (of one follower or all) past their expiry."""
        tokens = self._access if kind == "access" else self._refresh
        now = self.clock.now()
        with self._lock:
            for token in tokens.values():
                if openid in (None, token.openid):
                    token.expires_at = min(token.expires_at, now)

    def invalidate(self, openid: str) -> None:
        """What a password change does: every token of the follower stops working."""
        with self._lock:
            for token in (*self._access.values(), *self._refresh.values()):
                if token.openid == openid:
                    token.invalidated = True


class BasicTokens:
    """/cgi-bin/token and /cgi-bin/stable_token: two independent token chains."""

    def __init__(self, clock: Clock, app_id: str, app_secret: str) -> None:
        self.clock = clock
        self.app_id = app_id
        self.app_secret = app_secret
        self._expiry: dict[str, float] = {}  # token -> time it stops working
        self._superseded: set[str] = set()
        self._latest = {"token": "", "stable": ""}
        self._lock = threading.Lock()
        self.quotas = Quotas(clock)
        self.ttl = BASIC_TTL  # lifetime of new tokens, for tests to shorten

    def check_app(self, params: dict[str, Any]) -> None:
        """grant_type, appid and secret as both token endpoints check them."""
        if params.get("grant_type") != "client_credential":
            raise WeChatError(40002)
        if not params.get("appid"):
            raise WeChatError(41002)
        if params["appid"] != self.app_id:
            raise WeChatError(40013)
        if not params.get("secret"):
            raise WeChatError(41004)
        if params["secret"] != self.app_secret:
            raise WeChatError(40125)

    def token(self) -> dict[str, Any]:
        """A new token each call; the previous one survives a 5-minute overlap."""
        with self._lock:
            return self._renew("token", OVERLAP)

    def stable(self, force_refresh: bool) -> dict[str, Any]:
        """The same token while it has more than 5 minutes left; force_refresh kills it.
        Within the quotas only (45011, 45009)."""
        with self._lock:
            self.quotas.spend(force_refresh)
            current = self._latest["stable"]
            left = self._expiry.get(current, 0) - self.clock.now()
            if current and left > OVERLAP and not force_refresh:
                return {"access_token": current, "expires_in": int(left)}
            return self._renew("stable", 0 if force_refresh else OVERLAP)

    def _renew(self, chain: str, overlap: float) -> dict[str, Any]:
        now = self.clock.now()
        previous = self._latest[chain]
        if previous:
            self._expiry[previous] = min(self._expiry[previous], now + overlap)
            self._superseded.add(previous)
        token = _token(136)
        self._latest[chain] = token
        self._expiry[token] = now + self.ttl
        return {"access_token": token, "expires_in": self.ttl}

    def check(self, token: str) -> None:
        """A basic token as any cgi-bin API checks it: 40001 unknown or replaced, 42001 old."""
        if not token:
            raise WeChatError(41001)
        with self._lock:
            expiry = self._expiry.get(token)
            superseded = token in self._superseded
        if expiry is None or (superseded and self.clock.now() >= expiry):
            raise WeChatError(40001)
        if self.clock.now() >= expiry:
            raise WeChatError(42001)


class Quotas:
    """stable_token's call quotas on the simulator clock; the limits are attributes so
    that a test can lower them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.per_minute = STABLE_PER_MINUTE
        self.per_day = STABLE_PER_DAY
        self.force_per_day = FORCE_PER_DAY
        self.force_interval = FORCE_INTERVAL
        self._calls: dict[tuple[str, int], int] = {}  # (counter, minute or day) -> calls
        self._last_force = float("-inf")

    def spend(self, force_refresh: bool) -> None:
        """Count one call (the caller holds the lock); WeChatError when over a quota."""
        now = self.clock.now()
        minute, day = ("minute", int(now // 60)), ("day", int(now // 86400))
        forced = ("force", day[1])
        self._calls = {key: n for key, n in self._calls.items() if key in (minute, day, forced)}
        if self._calls.get(minute, 0) >= self.per_minute:
            raise WeChatError(MINUTE_QUOTA)
        if self._calls.get(day, 0) >= self.per_day:
            raise WeChatError(DAILY_QUOTA)
        spent = [minute, day]
        if force_refresh:
            if now - self._last_force < self.force_interval:
                raise WeChatError(MINUTE_QUOTA)
            if self._calls.get(forced, 0) >= self.force_per_day:
                raise WeChatError(DAILY_QUOTA)
            spent.append(forced)
            self._last_force = now
        for key in spent:
            self._calls[key] = self._calls.get(key, 0) + 1
