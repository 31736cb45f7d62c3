"""Configuration file: what it accepts, and clear errors for what it does not."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from server.config import SECTIONS, ConfigError, ConfigFile, load_config, parse_camera


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


CAM = '[[cameras]]\nid = "door"\nname = "Door"\nmain = "rtsp://h/1"\n'


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # wrong type: no "30" -> 30, no "false" -> True
        ('[recording]\nsegment_seconds = "30"\n',
         "[recording] segment_seconds: expected a number, got a string"),
        ('[server]\ndiscovery = "false"\n',
         "[server] discovery: expected true or false, got a string"),
        ('[analytics]\nproviders = ["CPUExecutionProvider", 3]\n',
         "[analytics] providers[1]: expected a string, got an integer"),
        ("[storage]\nmax_bytes = 1.5\n", "[storage] max_bytes: expected an integer, got a number"),
        ("recording = 5\n", "[recording]: expected a table, got an integer"),
        # unknown key, unknown table
        ("[recording]\nsegment_secs = 3\n", "[recording] segment_secs: unknown key"),
        (CAM + "password = 1\n", "[[cameras]] #1 password: unknown key"),
        ("[bogus]\n", "unknown section [bogus]"),
        # out of range
        ("[recording]\nsegment_seconds = 0\n", "[recording] segment_seconds: must be >= 1"),
        ("[analytics]\nfps = 60\n", "[analytics] fps: must be <= 30"),
        (CAM + "retention_days = -1\n", "[[cameras]] #1 retention_days: must be > 0"),
        ('[server]\nlisten = "8480"\n', "[server] listen: must be HOST:PORT"),
        # bad camera id, in the second camera
        (CAM + CAM.replace("door", "Back Door"),
         "[[cameras]] #2 id: must match ^[a-z0-9][a-z0-9_-]{0,63}$"),
        (CAM + CAM, "[[cameras]] #2 id: 'door' is already camera #1's; camera ids must be unique"),
        # missing required
        ('[[cameras]]\nid = "door"\nmain = "rtsp://h/1"\n',
         "[[cameras]] #1 name: required key missing"),
        ('[server]\nroles = "record"\n', "[server] roles: record, live and ai need ingest"),
    ],
)  # fmt: skip
def test_each_bad_value_is_one_line_naming_file_table_and_key(
    tmp_path: Path, text: str, line: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'v.toml'}: ") and "\n" not in message
    assert message.removeprefix(f"{tmp_path / 'v.toml'}: ").startswith(line), message


def test_a_camera_body_is_checked_like_the_file() -> None:
    good = {"id": "door", "name": "Door", "main": "rtsp://h/1", "retention_days": 7}
    assert parse_camera(good).retention_days == 7.0
    assert parse_camera({**good, "sub": ""}).streams() == {"main": ("rtsp://h/1", True)}
    for bad, message in [
        ({**good, "record_sub": "no"}, "camera record_sub: expected true or false, got a string"),
        ({**good, "id": "Door"}, "camera id: must match"),
        ({**good, "main": "h/1"}, "camera main: must be a URL"),
        ({**good, "sub": "h/2"}, "camera sub: must be a URL"),
        ({**good, "extra": 1}, "camera extra: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=f"^{message}"):
            parse_camera(bad)


def test_every_key_is_described_for_the_reference() -> None:
    """The configuration reference is generated from these Structs: each key needs its text."""
    (_schema,), defs = msgspec.json.schema_components([ConfigFile])
    assert set(SECTIONS) == set(defs["ConfigFile"]["properties"])
    for section in SECTIONS.values():
        info = defs[section.__name__]
        assert info.get("description") and not info["additionalProperties"], section
        for key, prop in info["properties"].items():
            assert prop.get("description"), f"{section.__name__}.{key}"


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("rtsp://admin:s3cret@192.0.2.1/stream1", "rtsp://admin:***@192.0.2.1/stream1"),
        ("rtsp://192.0.2.1/a@b", "rtsp://192.0.2.1/a@b"),
        ("file:///clips/a.mp4", "file:///clips/a.mp4"),
    ],
)
def test_camera_passwords_never_reach_the_log(url: str, logged: str) -> None:
    from server.supervisor import redact_url

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
