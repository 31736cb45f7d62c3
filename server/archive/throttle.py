"""A bandwidth cap shared by the upload threads: a token bucket, and a file reader that takes
tokens before each piece it hands to the HTTP client."""

from __future__ import annotations

import io
import threading
import time
from typing import IO

PIECE = 64 * 1024


class TokenBucket:
    """``rate`` bytes per second with one second of burst; ``rate`` 0 takes nothing."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate <= 0 or n <= 0:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= min(n, self.rate):
                    self._tokens -= n
                    return
                wait = (min(n, self.rate) - self._tokens) / self.rate
            time.sleep(wait)


class ThrottledReader(io.RawIOBase):
    """A seekable binary file whose reads are paced by ``bucket`` (botocore may rewind it)."""

    def __init__(self, f: IO[bytes], bucket: TokenBucket) -> None:
        self._f, self._bucket = f, bucket

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = PIECE if n is None or n < 0 else min(n, PIECE)
        data = self._f.read(n)
        self._bucket.take(len(data))
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()
