"""Followers of the simulated official account: fixtures and generated ones."""

import hashlib
import secrets
import string
from dataclasses import dataclass

OPENID_ALPHABET = string.ascii_letters + string.digits + "-_"
ADJECTIVES = ("快乐的", "安静的", "勇敢的", "聪明的", "慢吞吞的", "爱笑的", "迷路的", "认真的")
ANIMALS = (("熊猫", "🐼"), ("小猫", "🐱"), ("兔子", "🐰"), ("狐狸", "🦊"), ("企鹅", "🐧"))


def avatar_id(key: str) -> str:
    """An opaque, stable avatar id, shaped like WeChat's (it does not reveal the openid)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass
class Follower:
    """One WeChat user as this account sees them (openid is per account, unionid is not).
    `subscribed`: whether they follow the account now (subscribe/unsubscribe pushes set it).
    `snapshot`: whether pages open as WeChat's snapshot (快照页) for them: a userinfo
    authorization then grants a virtual account (see `virtual_openid`)."""

    openid: str
    nickname: str
    unionid: str | None = None
    subscribed: bool = True
    snapshot: bool = False

    @property
    def avatar_id(self) -> str:
        return avatar_id(self.openid)

    def as_dict(self, avatar_url: str) -> dict[str, str | bool | None]:
        """The follower as the control API shows it, with the URL of their avatar."""
        return {
            "openid": self.openid,
            "nickname": self.nickname,
            "unionid": self.unionid,
            "headimgurl": avatar_url,
            "subscribed": self.subscribed,
            "snapshot": self.snapshot,
        }


FIXTURE_FOLLOWERS = (
    Follower("o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "小明😀"),
    Follower("o6_bmasdasdsad6_2sgVt7hMZOPf", "张三🎉", unionid="oZx8T1uKq0sR3wV5yB7dF9hJ2lM4"),
    Follower("o6_bAlice0Wang_9xYz7QrStUv12", "Ａlice·王"),
    Follower("o6_bPanda3xSs_ScriptTest0001", "<b>熊猫</b>&🐼"),
)
DEFAULT_OPENID = FIXTURE_FOLLOWERS[0].openid


def virtual_openid(openid: str) -> str:
    """The virtual account a snapshot page grants instead of `openid`: stable, shaped
    like an openid, and never one of a real follower."""
    return "o6_bSnapshot" + hashlib.sha256(f"snapshot:{openid}".encode()).hexdigest()[:16]


def new_openid() -> str:
    """A fresh 28-character openid shaped like the fixtures' (prefix `o6_b`)."""
    return "o6_b" + "".join(secrets.choice(OPENID_ALPHABET) for _ in range(24))


def random_nickname() -> str:
    """A Chinese nickname with an emoji, so every new follower exercises UTF-8 handling."""
    animal, emoji = secrets.choice(ANIMALS)
    return f"{secrets.choice(ADJECTIVES)}{animal}{emoji}"
