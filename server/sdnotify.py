"""systemd's service notification protocol (``sd_notify``) with the standard library.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a datagram socket) and, with
``WatchdogSec=``, ``WATCHDOG_USEC``: the recorder says ``READY=1`` once it records and serves,
``WATCHDOG=1`` while its loop runs, ``STOPPING=1`` when asked to stop
(``packaging/systemd/vigia-server.service``). Outside systemd every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    """Send ``KEY=value`` lines to the service manager; False when there is none (or it fails:
    a lost notification must never stop the recorder)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        log.warning("service manager notification failed: %s", exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to send ``WATCHDOG=1`` (half the manager's time-out), or None without one."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None
