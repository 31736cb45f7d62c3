"""Login rate limit: after too many failures in a window, refuse until the window has passed.

Counted both per client address (one machine guessing many names) and per user name (many
machines guessing one password). The per-name count also lets anyone hold a name's logins off
for a window; that is the usual price, and it is short. In memory only: a restart forgets.
Pure logic with the clock passed in; not thread-safe (call it from the event loop).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

from server.clock import Clock

MAX_KEYS = 100_000
"""Bound on remembered addresses and names, so a flood of made-up names cannot exhaust memory."""


@dataclass
class LoginRateLimiter:
    clock: Clock
    max_failures: int = 5
    window_s: float = 60.0
    _failures: dict[str, deque[int]] = field(default_factory=dict, repr=False)

    def retry_after_s(self, remote: str, name: str) -> float:
        """Seconds before a login from ``remote`` for ``name`` may be tried; 0: now."""
        now = self.clock.now_us()
        wait_us = 0
        for key in _keys(remote, name):
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait_us = max(wait_us, times[-self.max_failures] + self._window_us - now)
        return wait_us / 1_000_000

    def allowed(self, remote: str, name: str) -> bool:
        return self.retry_after_s(remote, name) == 0

    def failure(self, remote: str, name: str) -> None:
        """Count a failed login (wrong password, unknown or disabled user)."""
        now = self.clock.now_us()
        if len(self._failures) >= MAX_KEYS:
            self._prune(now)
        for key in _keys(remote, name):
            times = self._failures.setdefault(key, deque(maxlen=self.max_failures))
            times.append(now)

    def success(self, remote: str, name: str) -> None:
        """A good login clears the name's count, not the address's (a valid account must not
        let one machine reset its count and keep guessing other names)."""
        self._failures.pop(_name_key(name), None)

    @property
    def _window_us(self) -> int:
        return int(self.window_s * 1_000_000)

    def _recent(self, key: str, now: int) -> deque[int] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window_us:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def _prune(self, now: int) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= MAX_KEYS:  # all recent: forget the oldest entries
            del self._failures[next(iter(self._failures))]


def _keys(remote: str, name: str) -> tuple[str, str]:
    return _remote_key(remote), _name_key(name)


def _name_key(name: str) -> str:
    return "name:" + name.casefold()  # user names are case-insensitive in the catalog


def _remote_key(remote: str) -> str:
    """An IPv4 address, or the /64 of an IPv6 one (one host usually has a whole /64)."""
    try:
        addr = ipaddress.ip_address(remote.split("%")[0])
    except ValueError:
        return "addr:" + remote
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"addr:{addr.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{addr}/64', strict=False)}"
    return f"addr:{addr}"
