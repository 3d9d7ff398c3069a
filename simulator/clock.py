"""The simulator's own clock, so tests can age codes and tokens without sleeping."""

import threading
import time


class Clock:
    """Wall time plus an offset that only moves forward by `advance`."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch as the simulated WeChat sees them."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulated time forward; codes and tokens age accordingly."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
