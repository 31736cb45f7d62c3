"""The web viewer in a real browser: Debian's headless Chromium, driven by Selenium, logs in,
sees the cameras with snapshots and plays two of them live over WHEP.

The recorder runs in a network namespace (see ``test_whep``: WebRTC needs a non-loopback
path); Chromium runs here and reaches it over the veth pair.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, START_S, wait_until
from tests.test_whep import (  # noqa: F401  (netns is a fixture used by name)
    ADMIN_PASSWORD,
    Recorder,
    _get_json,
    login,
    metric,
    netns,
    start_recorder,
    stop_recorder,
    wait_online,
)

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def recorder(netns, camera_clips, tmp_path_factory) -> Iterator[Recorder]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("web")
    cams = [(f"cam{i}", f"file://{m}", f"file://{s}") for i, (m, s) in enumerate(camera_clips[:2])]
    rec = start_recorder(netns, tmp, cams)
    try:
        wait_until(
            lambda: _get_json(f"{rec.base}/healthz")[0] == 200 or rec.proc.poll() is not None,
            START_S,  # a busy machine can take long to start one; a quick one costs nothing
            "the recorder's API",
        )
        assert rec.proc.poll() is None, rec.log()
        token = login(rec.base)
        wait_online(rec, token, {("cam0", "sub"), ("cam1", "sub")})
        yield rec
    finally:
        stop_recorder(rec)


@pytest.fixture
def browser() -> Iterator:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (apt-get install ...)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vigia-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
        "--autoplay-policy=no-user-gesture-required",
        # real host addresses in ICE candidates, not mDNS names the recorder cannot resolve
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


FRAMES_DECODED = """
const done = arguments[arguments.length - 1];
const tile = window.vigia.tiles.get(arguments[0]);
if (!tile) { done(-1); return; }
tile.pc.getStats().then((report) => {
  let n = 0;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded;
  });
  done(n);
});
"""


def test_browser_logs_in_and_plays_cameras_live(recorder: Recorder, browser) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    d.get(recorder.base + "/")
    wait_until(lambda: d.find_element(By.ID, "login-name").is_displayed(), 10, "the login form")
    d.find_element(By.ID, "login-name").send_keys("admin")
    d.find_element(By.ID, "login-password").send_keys(ADMIN_PASSWORD)
    d.find_element(By.ID, "login-button").click()
    items = wait_until(
        lambda: len(found := d.find_elements(By.CSS_SELECTOR, "#cameras li")) == 2 and found,
        10,
        "the camera list",
    )
    # snapshots come through fetch() with the token, shown from blob: URLs
    wait_until(
        lambda: d.execute_script(
            "return [...document.querySelectorAll('#cameras img')]"
            ".every(i => i.src.startsWith('blob:') && i.naturalWidth > 0)"
        ),
        20,
        "camera snapshots",
    )
    for item in items:
        item.click()

    def playing(camera: str) -> bool:
        state = d.execute_script(
            "const t = window.vigia.tiles.get(arguments[0]);return t ? t.video.readyState : -1;",
            camera,
        )
        return state >= 3

    for cam in ("cam0", "cam1"):
        wait_until(lambda cam=cam: playing(cam), 20, f"{cam} playing in the browser")
    first = d.execute_async_script(FRAMES_DECODED, "cam0")
    wait_until(
        lambda: d.execute_async_script(FRAMES_DECODED, "cam0") >= first + 10,
        10,
        "frames decoded to grow",
    )
    wait_until(
        lambda: all(
            "fps" in e.text for e in d.find_elements(By.CSS_SELECTOR, ".tile .overlay .stats")
        ),
        10,
        "the fps and latency overlay",
    )
    assert metric(recorder.base, "vigia_webrtc_sessions") == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "web-viewer.png"))
    overlay = d.find_element(By.CSS_SELECTOR, ".tile .overlay .stats").text
    print(f"overlay: {overlay}")
    # closing a tile ends its session on the recorder (DELETE on the WHEP location)
    d.find_element(By.CSS_SELECTOR, ".tile[data-camera=cam1] .close").click()
    wait_until(
        lambda: metric(recorder.base, "vigia_webrtc_sessions") == 1, 10, "the closed tile's session"
    )
