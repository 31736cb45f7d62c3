"""Motion search: when did something move inside a rectangle of one camera's picture?

The recorder answers ``POST /search/motion`` from its coarse motion grid. The motion panel
binds to this model: ``search`` gives a Future of the ranges found, newest first; ``found``
fires with them (on the network loop) for whoever follows the results.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from app.api import ApiClient
from app.remote import RemoteModel
from app.signals import Signal

Region = tuple[float, float, float, float]  # normalised x1, y1, x2, y2
Range = tuple[int, int]  # start_us, end_us


def check_region(region: Region) -> Region:
    """ValueError unless ``x1 < x2`` and ``y1 < y2`` within [0, 1]."""
    x1, y1, x2, y2 = region
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise ValueError(f"region {region!r} is not x1 < x2, y1 < y2 within [0, 1]")
    return (x1, y1, x2, y2)


def motion_query(camera_id: str, region: Region, start_us: int, end_us: int) -> dict[str, Any]:
    """The body of ``POST /search/motion``."""
    x1, y1, x2, y2 = check_region(region)
    return {
        "camera": camera_id,
        "region": [x1, y1, x2, y2],
        "start_us": int(start_us),
        "end_us": int(end_us),
    }


def parse_ranges(answer: Any) -> list[Range]:
    """The answer's ranges, newest first. KeyError, TypeError or ValueError for an answer
    that is not ``{"ranges": [{"start_us", "end_us"}, ...]}``."""
    ranges = [(int(r["start_us"]), int(r["end_us"])) for r in answer["ranges"]]
    return sorted(ranges, reverse=True)  # newest first, as the events list


class MotionSearch(RemoteModel):
    """Motion searches on one recorder."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.found: Signal[list[Range]] = Signal("motion_search.found")

    def search(
        self, camera_id: str, region: Region, start_us: int, end_us: int
    ) -> concurrent.futures.Future[list[Range]]:
        """ValueError now for a bad region; the Future raises ApiError for a refusal and
        KeyError/TypeError/ValueError for an answer that is not ranges."""
        body = motion_query(camera_id, region, start_us, end_us)

        async def work(api: ApiClient) -> list[Range]:
            ranges = parse_ranges(await api.post_json("/search/motion", body))
            self.found.emit(ranges)
            return ranges

        return self._call(work)
