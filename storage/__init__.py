"""Persistence: one SQLAlchemy store for everything the bot must not forget."""

from storage.deliveries import DeliveryLedger
from storage.sessions import StoreSessionStorage
from storage.store import AccountToken, Acquaintance, Claim, Follower, StorageError, Store

__all__ = [
    "AccountToken",
    "Acquaintance",
    "Claim",
    "DeliveryLedger",
    "Follower",
    "StorageError",
    "Store",
    "StoreSessionStorage",
]
