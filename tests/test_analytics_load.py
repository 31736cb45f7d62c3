"""Analytics that cannot starve the recorder (docs/design/analytics.md, "Load shedding").

A main-only camera is analysed on key frames only by default (the rest is never decoded); the
load governor raises the shedding level while analytics or the machine is over its limit, lowers
it once both are well under, and the level reaches the pipelines, the camera's status and
/metrics. The machine's load is the governor's input, given here by the test (as a clock is).
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from server.analytics.governor import CALM_S, SPARSE_US, LoadGovernor
from server.api.analytics import AnalyticsCollector
from server.sim.clips import ClipSpec, make_clip
from tests.test_analytics_pipeline import Rig, model  # noqa: F401  (the module's fixture)

FRAMES, KEYS = 100, 4  # 4 s at 25 fps, a key frame every second


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_clip(
        tmp_path_factory.mktemp("load") / "load.mp4",
        ClipSpec(320, 180, fps=25, seconds=4, label="load"),
    )
    with av.open(str(path)) as c:
        keys = sum(1 for p in c.demux(video=0) if p.size and p.is_keyframe)
    assert keys == KEYS
    return path


def test_main_only_camera_is_analysed_on_key_frames_by_default(
    tmp_path: Path,
    model: Path,  # noqa: F811
    clip: Path,
) -> None:
    rig = Rig(tmp_path / "data", model, main_key_frames_only=True)  # the default, as shipped
    try:
        rig.settings(fps=5.0)
        c = rig.run(clip)["counters"]
        assert c.decoded == KEYS and c.analysed == KEYS
        assert c.shed_packets == FRAMES - KEYS and c.dropped_packets == 0
        status = rig.analytics.status(rig.camera)
        assert status["key_frames_only"] is True and status["load"] == "normal"
    finally:
        rig.close()


class Inputs:
    """What the governor reads: a clock, analytics' CPU seconds, the machine's busy seconds."""

    def __init__(self, cores: int = 2) -> None:
        self.now, self.own, self.busy, self.total, self.cores = 0.0, 0.0, 0.0, 0.0, cores

    def advance(self, seconds: float, own_share: float, busy_share: float) -> None:
        self.now += seconds
        self.own += own_share * seconds * self.cores
        self.busy += busy_share * seconds * self.cores
        self.total += seconds * self.cores

    def governor(self, apply, **kw) -> LoadGovernor:
        return LoadGovernor(
            lambda: self.own, apply, cores=self.cores, interval_s=3600,
            machine=lambda: (self.busy, self.total), clock=lambda: self.now, **kw,
        )  # fmt: skip


def test_governor_sheds_step_by_step_and_takes_load_back_when_calm() -> None:
    x = Inputs()
    applied: list[int] = []
    gov = x.governor(applied.append, max_cpu=0.4, max_busy=0.6)
    assert gov.step() == 0  # the first sample only sets the baseline
    x.advance(2, own_share=0.5, busy_share=0.55)  # analytics over its own limit
    assert gov.step() == 1
    x.advance(2, own_share=0.1, busy_share=0.9)  # the machine over its limit
    assert gov.step() == 2
    x.advance(2, own_share=0.1, busy_share=0.9)
    assert gov.step() == 3
    x.advance(2, own_share=0.1, busy_share=0.9)
    assert gov.step() == 3  # the last level: the key frames get sparser instead
    assert gov.load.sparse_us == 2 * SPARSE_US
    x.advance(2, own_share=0.01, busy_share=0.9)  # a busy machine, analytics nearly free
    assert gov.step() == 3  # not the cause: nothing to shed, nothing to take back either
    assert (gov.load.own, gov.load.busy) == (pytest.approx(0.01), pytest.approx(0.9))
    x.advance(2, own_share=0.3, busy_share=0.45)  # under the limits, not well under
    assert gov.step() == 3
    for _ in range(int(CALM_S / 2)):
        x.advance(2, own_share=0.1, busy_share=0.3)
        gov.step()
    assert gov.load.level == 3  # calm, not for CALM_S yet (counted from its first sample)
    x.advance(2, own_share=0.1, busy_share=0.3)
    gov.step()
    assert (gov.load.level, gov.load.sparse_us) == (3, SPARSE_US)  # first denser key frames
    for _ in range(int(CALM_S / 2)):
        x.advance(2, own_share=0.1, busy_share=0.3)
        gov.step()
    assert gov.load.level == 2  # then one level back, after CALM_S more of calm
    assert applied == [1, 2, 3, 3, 3, 2]


def test_shedding_reaches_the_pipeline_status_and_metrics(
    tmp_path: Path,
    model: Path,  # noqa: F811
    clip: Path,
) -> None:
    rig = Rig(tmp_path / "data", model, shed_load=True)  # every frame unless shedding
    x = Inputs()
    rig.analytics.governor = x.governor(rig.analytics._shed, max_cpu=0.4, max_busy=0.6)
    try:
        rig.settings(fps=5.0)
        gov = rig.analytics.governor
        gov.step()
        x.advance(2, own_share=0.1, busy_share=0.95)
        gov.step()
        x.advance(2, own_share=0.1, busy_share=0.95)
        assert gov.step() == 2  # key frames only
        c = rig.run(clip)["counters"]  # starts the camera's pipeline at the current level
        assert c.decoded == KEYS and c.shed_packets == FRAMES - KEYS
        status = rig.analytics.status(rig.camera)
        assert status["load"] == "key_frames" and status["key_frames_only"] is False
        assert "shedding load: key frames" in status["reason"]
        metrics = {
            (s.name, tuple(s.labels.values())): s.value
            for family in AnalyticsCollector(rig.analytics).collect()
            for s in family.samples
        }
        assert metrics[("vigia_analytics_shed_level", ())] == 2
        assert metrics[("vigia_analytics_packets_shed_total", (rig.camera,))] == FRAMES - KEYS
        for _ in range(int(CALM_S / 2) + 1):
            x.advance(2, own_share=0.05, busy_share=0.2)
            gov.step()
        assert rig.analytics.cameras()[rig.camera].shed == 1  # half rate, every frame decoded
    finally:
        rig.close()
