"""Login rate limit with exponential backoff, per (address, name), per name and per address.

An attacker must be slowed without a victim being locked out (issue 19; before, five bad
logins from one address held off every user of that address for a minute). So the tight
limit is on the pair: after ``max_failures`` failures of one name from one address, each
further try waits twice as long as the one before (2 s, 4 s, ... up to ``window_s``). The
name alone (many machines guessing one password) and the address alone (one machine guessing
many names) get the same backoff only after ``spread_factor`` times as many failures, so a
colleague behind the same address, or the owner of a name someone else guesses, still logs
in. Counts are forgotten ``forget_s`` after a key's last failure. In memory only: a restart
forgets. Pure logic with the clock passed in; not thread-safe (call it from the event loop).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from server.clock import Clock

MAX_KEYS = 100_000
"""Bound on remembered keys, so a flood of made-up names cannot exhaust memory."""


@dataclass
class _Count:
    failures: int
    last_us: int


@dataclass
class LoginRateLimiter:
    clock: Clock
    max_failures: int = 5
    window_s: float = 60.0  # the longest wait between two tries
    base_s: float = 2.0  # the first wait, once a key has ``max_failures`` failures
    spread_factor: int = 4  # a name or an address alone: this many times ``max_failures``
    forget_s: float = 900.0
    _counts: dict[str, _Count] = field(default_factory=dict, repr=False)

    def retry_after_s(self, remote: str, name: str) -> float:
        """Seconds before a login from ``remote`` for ``name`` may be tried; 0: now."""
        now = self.clock.now_us()
        wait_us = 0
        for key, free in self._keys(remote, name):
            count = self._recent(key, now)
            if count is not None and count.failures >= free:
                wait_us = max(wait_us, count.last_us + self._wait_us(count.failures - free) - now)
        return wait_us / 1_000_000

    def allowed(self, remote: str, name: str) -> bool:
        return self.retry_after_s(remote, name) == 0

    def failure(self, remote: str, name: str) -> None:
        """Count a failed login (wrong password, unknown or disabled user)."""
        now = self.clock.now_us()
        if len(self._counts) >= MAX_KEYS:
            self._prune(now)
        for key, _ in self._keys(remote, name):
            count = self._recent(key, now)
            if count is None:
                self._counts[key] = _Count(1, now)
            else:
                count.failures += 1
                count.last_us = now

    def success(self, remote: str, name: str) -> None:
        """A good login clears the name's counts, not the address's (a valid account must not
        let one machine reset its count and keep guessing other names)."""
        self._counts.pop(_pair_key(remote, name), None)
        self._counts.pop(_name_key(name), None)

    def _keys(self, remote: str, name: str) -> tuple[tuple[str, int], ...]:
        spread = self.max_failures * self.spread_factor
        return (
            (_pair_key(remote, name), self.max_failures),
            (_name_key(name), spread),
            (_remote_key(remote), spread),
        )

    def _wait_us(self, beyond: int) -> int:
        """The wait after the failure that put a key ``beyond`` failures over its free ones."""
        return int(min(self.window_s, self.base_s * 2 ** min(beyond, 32)) * 1_000_000)

    def _recent(self, key: str, now: int) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now - count.last_us >= self.forget_s * 1_000_000:
            del self._counts[key]
            return None
        return count

    def _prune(self, now: int) -> None:
        for key in list(self._counts):
            self._recent(key, now)
        while len(self._counts) >= MAX_KEYS:  # all recent: forget the oldest entries
            del self._counts[next(iter(self._counts))]


def _pair_key(remote: str, name: str) -> str:
    return f"pair:{_remote_key(remote)}|{_name_key(name)}"


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
