"""Analytics that cannot starve the recorder: watch its own cost, shed load before saturation.

Every ``interval_s`` the governor compares analytics' own CPU (the decode threads' CPU time and
the detector's busy time, as a share of all cores) with ``[analytics] max_cpu``, and the whole
machine's busy share (``/proc/stat``) with ``max_busy``. Over either, it raises every camera's
shedding level by one; when both have stayed well under for ``calm_s``, it lowers it by one
(docs/design/analytics.md, "Load shedding"):

0. ``normal``: the configured analysis rate;
1. ``half_rate``: half of it;
2. ``key_frames``: key frames only, the others dropped on the ingest thread (never decoded);
3. ``sparse_key_frames``: one key frame every ``SPARSE_US`` at most; still over, the interval
   doubles (up to ``MAX_SPARSE_US``) and halves back when calm before the level goes down.

Recording, live and the API are never slowed by this: they do not wait on analytics anyway
(bounded queues that drop); the governor keeps analytics from taking the cores they need.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

LEVELS = ("normal", "half_rate", "key_frames", "sparse_key_frames")
MAX_LEVEL = len(LEVELS) - 1
SPARSE_US = 4_000_000
MAX_SPARSE_US = 32_000_000
CALM_S = 10.0  # under both limits this long before stepping back down
CALM_FACTOR = 0.6  # "well under": own CPU below this share of max_cpu ...
BUSY_MARGIN = 0.1  # ... and the machine this much under max_busy
OWN_FLOOR = 0.02  # a busy machine sheds analytics only when analytics costs something


def machine_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot (Linux), or None."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class Load:
    """The last window's figures (status, metrics, logs)."""

    level: int = 0
    sparse_us: int = SPARSE_US  # level 3: the least time between two analysed key frames
    own: float = 0.0  # analytics CPU, share of all cores
    busy: float = 0.0  # machine busy, share of all cores


class LoadGovernor:
    """Decides the shedding level from analytics' CPU seconds and the machine's load."""

    def __init__(
        self,
        own_cpu_s: Callable[[], float],
        apply: Callable[[int], None],
        *,
        max_cpu: float,
        max_busy: float,
        cores: int | None = None,
        interval_s: float = 2.0,
        machine: Callable[[], tuple[float, float] | None] = machine_times,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.own_cpu_s, self.apply = own_cpu_s, apply
        self.max_cpu, self.max_busy = max_cpu, max_busy
        self.cores = cores or os.cpu_count() or 1
        self.interval_s = interval_s
        self.machine, self.clock = machine, clock
        self.load = Load()
        self._last: tuple[float, float, tuple[float, float] | None] | None = None
        self._calm_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> int:
        """Take one sample and maybe change the level; returns the level."""
        now, own, mach = self.clock(), self.own_cpu_s(), self.machine()
        last, self._last = self._last, (now, own, mach)
        if last is None or now <= last[0]:
            return self.load.level
        wall = now - last[0]
        self.load.own = (own - last[1]) / (wall * self.cores)
        if mach is not None and last[2] is not None and mach[1] > last[2][1]:
            self.load.busy = (mach[0] - last[2][0]) / (mach[1] - last[2][1])
        level, sparse = self.load.level, self.load.sparse_us
        over = self.load.own > self.max_cpu or (
            self.load.busy > self.max_busy and self.load.own > OWN_FLOOR
        )
        calm = (
            self.load.own < CALM_FACTOR * self.max_cpu
            and self.load.busy < self.max_busy - BUSY_MARGIN
        )
        if over:
            self._calm_since = None
            if level == MAX_LEVEL:
                sparse = min(sparse * 2, MAX_SPARSE_US)
            level = min(level + 1, MAX_LEVEL)
        elif calm and level > 0:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= CALM_S:
                self._calm_since = now
                if sparse > SPARSE_US:
                    sparse //= 2
                else:
                    level -= 1
        else:
            self._calm_since = None
        if sparse != self.load.sparse_us:
            log.warning("analytics: one key frame every %.0f s at most", sparse / 1e6)
            self.load.sparse_us = sparse
            self.apply(level)
        if level != self.load.level:
            log.warning(
                "analytics %s: %s (analytics %.0f %% of the machine, limit %.0f %%; "
                "machine %.0f %% busy, limit %.0f %%)",
                "sheds load" if level > self.load.level else "takes load back",
                LEVELS[level],
                self.load.own * 100,
                self.max_cpu * 100,
                self.load.busy * 100,
                self.max_busy * 100,
            )
            self.load.level = level
            self.apply(level)
        return level

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="analytics-governor", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:  # the governor must never take analytics down
                log.exception("analytics load governor")
