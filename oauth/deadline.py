"""One deadline per page: however many WeChat calls and retries a page makes, the
follower waits no longer than PAGE_DEADLINE in all."""

from __future__ import annotations

import time

# Seconds a follower's page may spend waiting on WeChat, all calls together: well
# under what someone tapping on a phone tolerates before giving up.
PAGE_DEADLINE = 8.0
# Starting a call with less time than this left is pointless: it could only time out.
SHORTEST_CALL = 0.2


class Deadline:
    def __init__(self, seconds: float = PAGE_DEADLINE) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def allows(self, pause: float = 0.0) -> bool:
        """Whether, after pausing `pause` seconds, there is still time for a call."""
        return self.remaining() >= pause + SHORTEST_CALL
