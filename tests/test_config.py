"""Configuration file: what it accepts, and clear errors for what it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_config


def _load(tmp_path: Path, text: str):
    p = tmp_path / "v.toml"
    p.write_text(text)
    return load_config(p)


def test_full_config(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        """
[server]
data_dir = "/var/lib/vigia"
listen = "0.0.0.0:8480"
[recording]
segment_seconds = 30
[storage]
max_bytes = 1000000000
[[cameras]]
id = "door"
name = "Front door"
main = "rtsp://10.0.0.5/main"
sub = "rtsp://10.0.0.5/sub"
retention_days = 14
""",
    )
    assert cfg.data_dir == Path("/var/lib/vigia") and cfg.listen == "0.0.0.0:8480"
    assert cfg.recording.segment_seconds == 30 and cfg.storage.max_bytes == 10**9
    (cam,) = cfg.cameras
    assert cam.streams() == {"main": ("rtsp://10.0.0.5/main", True),
                             "sub": ("rtsp://10.0.0.5/sub", True)}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[recording]\nsegment_secs = 3\n", "unknown key"),
        ("[bogus]\n", "unknown section"),
        ('[[cameras]]\nid = "Front Door"\nname = "x"\nmain = "rtsp://h/1"\n', "must match"),
        ('[[cameras]]\nid = "a"\nname = "x"\nmain = "h/1"\n', "must be a URL"),
        ('[[cameras]]\nid = "a"\nname = "x"\n', "main"),
        (
            '[[cameras]]\nid="a"\nname="x"\nmain="rtsp://h"\n[[cameras]]\nid="a"\nname="y"\n'
            'main="rtsp://h"\n',
            "unique",
        ),
        ("not toml [", "v.toml"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("rtsp://admin:s3cret@192.0.2.1/stream1", "rtsp://admin:***@192.0.2.1/stream1"),
        ("rtsp://192.0.2.1/a@b", "rtsp://192.0.2.1/a@b"),
        ("file:///clips/a.mp4", "file:///clips/a.mp4"),
    ],
)
def test_camera_passwords_never_reach_the_log(url: str, logged: str) -> None:
    from server.recorder import redact_url

    assert redact_url(url) == logged


def test_webrtc_has_no_ice_servers_unless_configured(tmp_path: Path) -> None:
    from server.webrtc.sessions import WebRtcSettings

    assert load_config(None).webrtc.ice_servers == ()
    assert WebRtcSettings().rtc_configuration().iceServers == []
    cfg = tmp_path / "vigia.toml"
    cfg.write_text('[webrtc]\nice_servers = ["stun:stun.example.org:3478"]\nmax_sessions = 8\n')
    got = load_config(cfg).webrtc
    assert got.ice_servers == ("stun:stun.example.org:3478",) and got.max_sessions == 8
    cfg.write_text("[webrtc]\nstun = 1\n")
    with pytest.raises(ConfigError, match=r"\[webrtc\].*stun"):
        load_config(cfg)
