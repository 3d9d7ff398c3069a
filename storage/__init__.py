"""Persistence: one SQLAlchemy store for everything the bot must not forget."""

from storage.sessions import StoreSessionStorage
from storage.store import Claim, Follower, StorageError, Store

__all__ = ["Claim", "Follower", "StorageError", "Store", "StoreSessionStorage"]
