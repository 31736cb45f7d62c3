"""Input outside the API (issue 19): camera URL schemes, probe errors, redaction, log lines,
WHEP offers and per-user WHEP limits."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import socket
import threading
from fractions import Fraction
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from server.auth import Tokens, Users
from server.catalog import Catalog
from server.clock import SystemClock
from server.ingest.source import (
    PROBE_FAILED,
    Source,
    SourceError,
    Timeouts,
    check_camera_url,
)
from server.live.fanout import Fanout
from server.logs import setup_logging
from server.recording.packets import StreamInfo
from server.supervisor import redact_url
from server.webrtc.offer import OfferError, parse_offer
from server.webrtc.sessions import WebRtcSettings, WhepSessions

WRAPPERS = ("async:file://{clip}", "cache:file://{clip}", "subfile:file://{clip}",
            "concat:{clip}", "FILE://{clip}", "File://{clip}")  # fmt: skip


@pytest.mark.parametrize("template", WRAPPERS)
def test_local_files_are_refused_in_any_spelling(template: str, camera_clips: list) -> None:
    url = template.format(clip=camera_clips[0][0])
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        check_camera_url(url)  # what the API accepts: cameras' schemes only
    with pytest.raises(SourceError, match=re.escape(PROBE_FAILED)):
        Source.probe(url, SystemClock(), Timeouts(2, 2))
    if not template.lower().startswith("file:"):  # wrappers: not even from the config file
        with pytest.raises(SourceError, match="unsupported URL scheme"):
            Source(url, SystemClock(), Timeouts(2, 2), threading.Event()).close()


def test_camera_schemes_are_case_insensitive_and_config_clips_still_play(
    camera_clips: list,
) -> None:
    assert check_camera_url("RTSP://192.0.2.1/stream") == "rtsp"
    assert check_camera_url("https://192.0.2.1/cam.m3u8") == "https"
    source = Source(camera_clips[0][0].as_uri(), SystemClock(), Timeouts(2, 2),
                    threading.Event())  # fmt: skip
    try:
        assert source.info.codec == "h264"
    finally:
        source.close()


def test_a_probe_does_not_tell_open_ports_from_closed_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = socket.socket()  # bound, never listening: connections are refused
    blocker.bind(("127.0.0.1", 0))
    closed = blocker.getsockname()[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def refuse() -> None:  # an open port that speaks no RTSP
        conn, _ = listener.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=refuse, daemon=True).start()
    messages = []
    with caplog.at_level(logging.INFO, logger="server.ingest.source"):
        for port in (closed, listener.getsockname()[1]):
            with pytest.raises(SourceError) as exc:
                Source.probe(f"rtsp://u:pw@127.0.0.1:{port}/x", SystemClock(), Timeouts(3, 3))
            messages.append(str(exc.value))
    listener.close()
    blocker.close()
    assert messages == [PROBE_FAILED, PROBE_FAILED]
    assert "probe of rtsp://u:***@127.0.0.1" in caplog.text, "the reason is in the log"


def test_a_password_with_at_signs_is_never_half_shown() -> None:
    url = "rtsp://admin:p@ss@w0rd@192.0.2.1:554/Streaming/101?a=b@c"
    assert redact_url(url) == "rtsp://admin:***@192.0.2.1:554/Streaming/101?a=b@c"


def test_a_login_name_with_a_newline_cannot_forge_a_log_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        forged = "eve\n2026-12-07T10:00:00.000Z INFO    server.auth: admin logged in"
        logging.getLogger("server.api.auth").warning("login failed for %r / %s", forged, forged)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("t").exception("with\rtraceback")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = out.getvalue().splitlines()
    assert sum("login failed for" in ln for ln in lines) == 1
    assert not any(ln.startswith("2026-12-07T10:00:00") for ln in lines)
    assert "eve\\x0a2026" in lines[0]
    assert "with\\x0dtraceback" in lines[1] and lines[2] == "Traceback (most recent call last):"


# --- WHEP ---------------------------------------------------------------------------------


async def _offer(fingerprint: bool = True) -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    text = pc.localDescription.sdp
    await pc.close()
    if not fingerprint:
        text = "\r\n".join(ln for ln in text.split("\r\n") if not ln.startswith("a=fingerprint"))
    return text


def test_an_offer_without_a_dtls_fingerprint_is_refused() -> None:
    parse_offer(asyncio.run(_offer()))
    with pytest.raises(OfferError, match="DTLS fingerprint") as exc:
        parse_offer(asyncio.run(_offer(fingerprint=False)))
    assert exc.value.status == 400


def test_one_viewer_cannot_take_every_whep_slot_and_unconnected_sessions_end(
    tmp_path: Path,
) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    clock = SystemClock()
    users, tokens = Users(catalog, clock), Tokens(catalog, clock)
    eve = users.add("eve", "a long enough password", "viewer")
    admin = users.add("boss", "a long enough password", "admin")
    fanout = Fanout()
    fanout.sink("cam", "main").on_connect(
        StreamInfo("h264", 640, 360, Fraction(1, 90_000), None, 25.0)
    )
    settings = WebRtcSettings(max_sessions=4, max_sessions_per_user=2, connect_timeout_s=1.0,
                              check_interval_s=60)  # fmt: skip

    async def scenario() -> None:
        whep = WhepSessions(fanout, tokens, clock, lambda: [("cam", "main")], settings)
        eve_token, boss_token = tokens.issue(eve)[0], tokens.issue(admin)[0]
        first = await whep.create("cam", "main", await _offer(), eve_token)
        await whep.create("cam", "main", await _offer(), eve_token)
        with pytest.raises(OfferError) as exc:
            await whep.create("cam", "main", await _offer(), eve_token)
        assert exc.value.status == 429 and exc.value.code == "too_many_sessions"
        await whep.create("cam", "main", await _offer(), boss_token)  # the admin still gets in
        # nobody connects: each session ends after connect_timeout_s, freeing its slot
        await asyncio.wait_for(first.done.wait(), 5)
        await asyncio.wait_for(_until(lambda: not whep.sessions), 5)
        again = await whep.create("cam", "main", await _offer(), eve_token)
        # her rights change: the users API re-checks her sessions at once
        assert await whep.recheck_user("eve") == 0  # nothing changed yet
        users.set_cameras("eve", ["other"])
        assert await whep.recheck_user("eve") == 1 and again.done.is_set()
        await whep.close_all()

    try:
        asyncio.run(scenario())
    finally:
        catalog.close()


async def _until(predicate) -> None:  # type: ignore[no-untyped-def]
    while not predicate():
        await asyncio.sleep(0.05)
