"""WeRoBot's session interface over our store (not WeRoBot's SQLiteStorage,
which shares one connection across threads without a lock)."""

from werobot.session import SessionStorage

from storage.store import Store


class StoreSessionStorage(SessionStorage):
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, id: str | bytes) -> dict:
        return self.store.get_session(_text(id))

    def set(self, id: str | bytes, value: dict) -> None:
        self.store.set_session(_text(id), value)

    def delete(self, id: str | bytes) -> None:
        self.store.delete_session(_text(id))


def _text(id: str | bytes) -> str:
    return id.decode("utf-8") if isinstance(id, bytes) else id
