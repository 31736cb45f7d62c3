"""The worked examples of docs/design/*.md must stay true to the code, byte for byte.

recording.md's examples are found by their field names; the other documents tag each example
as a fenced block whose info string ends in ``example=<name>`` (```` ```text example=live-packet
````), read by :func:`example`; a test below makes sure every tagged example is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from server.protocol.fragindex import decode_fragment_index, encode_fragment_index
from server.recording.timing import SegmentClock

DESIGN = Path(__file__).resolve().parent.parent / "docs" / "design"
DOC = DESIGN / "recording.md"
_HEX_BYTE = re.compile(r"[0-9a-f]{2}")


def example(doc: str, name: str) -> list[str]:
    """The lines of the fenced block tagged ``example=<name>`` in ``docs/design/<doc>``."""
    text = (DESIGN / doc).read_text()
    m = re.search(rf"^```\w* example={re.escape(name)}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert m, f"worked example {name!r} missing from {doc}"
    return m.group(1).splitlines()


def fields(lines: list[str]) -> dict[str, str]:
    """``key   value`` lines (the key may hold single spaces; two or more end it)."""
    out = {}
    for line in lines:
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if len(parts) == 2:
            out.setdefault(parts[0], parts[1])
    return out


def hex_bytes(text: str) -> bytes:
    """Leading two-digit hex tokens of ``text`` (``00 × 60`` repeats a byte); the rest is a note."""
    out = bytearray()
    tokens = text.split()
    i = 0
    while i < len(tokens) and _HEX_BYTE.fullmatch(tokens[i]):
        if i + 2 < len(tokens) and tokens[i + 1] == "×":
            out += bytes.fromhex(tokens[i]) * int(tokens[i + 2])
            i += 3
        else:
            out += bytes.fromhex(tokens[i])
            i += 1
    return bytes(out)


def _field(text: str, name: str) -> list[str]:
    m = re.search(rf"^{re.escape(name)}\s+(.+)$", text, re.MULTILINE)
    assert m, f"{name!r} missing from the worked example"
    return m.group(1).split()


def test_fragment_index_example_encodes_byte_for_byte() -> None:
    text = DOC.read_text()
    start_us = int(_field(text, "segment start_us")[0])
    init = int(_field(text, "init_bytes")[0])
    frags = [
        (int(m.group(1)), int(m.group(2)))
        for m in re.finditer(r"^fragment\s+(\d+) bytes (\d+) us$", text, re.MULTILINE)
    ]
    assert len(frags) == 3
    expected = bytes.fromhex("".join(_field(text, "encoded")))
    assert encode_fragment_index(init, frags) == expected
    init2, decoded = decode_fragment_index(expected, start_us)
    assert init2 == init
    assert [f.offset for f in decoded] == [int(x) for x in _field(text, "decoded offsets")]
    assert [f.start_us for f in decoded] == [int(x) for x in _field(text, "decoded starts_us")]


def test_drift_bound_example() -> None:
    text = DOC.read_text()
    start = int(_field(text, "chained start_us")[0])
    media = int(_field(text, "media duration_us")[0])
    est = int(_field(text, "min(receive - media)")[0])
    clock = SegmentClock.chained_after(start, recv_us=est, media_elapsed_us=0)
    assert est - start == int(_field(text, "error_us")[0])
    assert media * 500 // 1_000_000 == int(_field(text, "bound_us")[0])
    assert clock.wall_duration_us(media, 500) == int(_field(text, "wall duration_us")[0])


# --- live.md ---------------------------------------------------------------------------------


def test_live_packet_example_encodes_byte_for_byte() -> None:
    from server.protocol.live import (
        FLAG_DISCONTINUITY,
        FLAG_KEY,
        LIVE_HEADER_SIZE,
        LiveCodec,
        decode_live_packet,
        encode_live_packet,
        live_subject,
        parse_live_subject,
    )

    lines = example("live.md", "live-packet")
    f = fields(lines)
    names = {"key": FLAG_KEY, "discontinuity": FLAG_DISCONTINUITY}
    flags = sum(names[n] for n in f["flags"].split())
    payload = hex_bytes(f["payload"])
    values = {k: int(f[k]) for k in ("seq", "pts_us", "dts_us", "duration_us")}
    codec = LiveCodec(int(f["codec"]))
    packet = encode_live_packet(payload, flags=flags, codec=codec, **values)

    layout = lines[lines.index(next(x for x in lines if x.startswith("field"))) + 1 :]
    expected = b""
    for row in layout:
        name, offset, rest = row.split(maxsplit=2)
        assert int(offset) == len(expected), f"{name} is at offset {len(expected)}"
        expected += hex_bytes(rest)
    assert packet == expected
    assert len(expected) - len(payload) == LIVE_HEADER_SIZE

    header, body = decode_live_packet(expected)
    assert (header.key, header.discontinuity, header.gap) == (True, True, False)
    assert header.codec is LiveCodec.H264
    assert (header.seq, header.pts_us, header.dts_us, header.duration_us) == tuple(values.values())
    assert bytes(body) == payload
    sid, camera, stream = parse_live_subject(f["subject"])
    assert live_subject(sid, camera, stream) == f["subject"]


def test_live_drop_example_follows_the_channel_policy() -> None:
    from server.live.publisher import Channel
    from server.protocol.live import FLAG_KEY, LiveCodec, decode_live_packet, encode_live_packet

    lines = example("live.md", "live-drop")
    limit = int(fields(lines)["queue"].split()[0])
    row = re.compile(r"^(\d+)\s+([KP])\s+(queued|dropped)\s+(\d+)\s+(\d+)(.*)$")
    rows = [m.groups() for m in map(row.match, lines) if m]
    assert len(rows) == 7
    channel = Channel("vigia.0123456789ab.live.door.main", limit, 1 << 20)
    for seq, frame, result, queued, dropped, _note in rows:
        key = frame == "K"
        payload = encode_live_packet(
            b"\0\0\0\1\x65", flags=FLAG_KEY if key else 0, codec=LiveCodec.H264,
            seq=int(seq), pts_us=int(seq), dts_us=int(seq),
        )  # fmt: skip
        assert channel.push(payload, key, 0) == (result == "queued"), f"seq {seq}"
        assert (len(channel.queue), channel.stats.dropped) == (int(queued), int(dropped))
    sent = {}
    while (item := channel.pop()) is not None:
        header, _ = decode_live_packet(item[0])
        sent[header.seq] = header.flags
    noted = {
        int(seq): int(m.group(1), 16)
        for seq, *_, note in rows
        if (m := re.search(r"flags ([0-9a-f]{2})", note))
    }
    assert sent == noted


def test_live_status_example_is_a_status_message() -> None:
    import json

    from server.ingest.worker import State, StreamStatus
    from server.live.publisher import stream_status_message

    (line,) = example("live.md", "live-status")
    body = json.loads(line)
    status = StreamStatus(
        body["camera"],
        body["stream"],
        State(body["state"]),
        reason=body["reason"],
        since_us=body["since_us"],
    )
    message = stream_status_message(status)
    assert message == body
    assert json.dumps(message, separators=(",", ":"), sort_keys=True) == line


# --- auth.md ---------------------------------------------------------------------------------


class StepClock:
    """A clock that only moves when the test says so."""

    def __init__(self, now_us: int = 1_700_000_000_000_000) -> None:
        self.t = now_us

    def now_us(self) -> int:
        return self.t


def test_rate_limit_example() -> None:
    from server.auth.ratelimit import LoginRateLimiter

    lines = example("auth.md", "rate-limit")
    clock = StepClock()
    t0 = clock.t
    limiter = LoginRateLimiter(clock)
    first = re.match(r"failures\s+(\S+) (\S+) at ([\d ]+) s$", lines[0])
    assert first, lines[0]
    remote, name, times = first.group(1), first.group(2), first.group(3).split()
    for t in times:
        clock.t = t0 + int(t) * 1_000_000
        limiter.failure(remote, name)
    checks = [re.match(r"at (\d+) s\s+(\S+) (\S+)\s+retry in (\d+) s", x) for x in lines[1:]]
    assert len(checks) == 5 and all(checks)
    for m in checks:
        assert m is not None
        clock.t = t0 + int(m.group(1)) * 1_000_000
        assert limiter.retry_after_s(m.group(2), m.group(3)) == int(m.group(4)), m.group(0)


def test_login_example_hash_token_and_nats_grants(tmp_path: Path) -> None:
    import hashlib

    from server.api.auth import NatsGrants
    from server.auth import Role, Tokens, User
    from server.auth.tokens import token_hash
    from server.auth.users import check_password, needs_rehash
    from server.catalog import Catalog
    from server.live.nats_server import EmbeddedNats

    lines = example("auth.md", "auth-login")
    f = fields(lines)
    assert f["password_hash"].startswith("scrypt$")
    assert check_password(f["password"], f["password_hash"])
    assert not check_password(f["password"] + "!", f["password_hash"])
    assert not needs_rehash(f["password_hash"])  # the example uses today's parameters
    assert token_hash(f["token"]) == f["token_hash"]
    assert f["token_hash"] == hashlib.sha256(f["token"].encode()).hexdigest()

    user = User(1, "ana", Role(f["role"]), False, frozenset(f["cameras"].split()), False)
    catalog = Catalog(tmp_path / "catalog.db")
    try:
        # not started: set_client only records the user (a running server would reload)
        nats = EmbeddedNats(tmp_path / "nats")
        grants = NatsGrants(nats, f["server id"], Tokens(catalog, StepClock()))
        answer = grants.grant(user, f["token"])
    finally:
        catalog.close()
    assert answer.user == f["nats user"]
    subscribe = [re.split(r"\s{2,}", x)[1] for x in lines if x.startswith("subscribe")]
    assert grants.subjects(user) == subscribe


# --- analytics.md ----------------------------------------------------------------------------


def test_motion_record_example_is_what_the_store_writes(tmp_path: Path) -> None:
    from server.analytics.motion import grid_cells
    from server.analytics.motionstore import MotionStore, region_mask

    f = fields(example("analytics.md", "motion-record"))
    region = tuple(float(v) for v in f["region"].split()[:4])
    grid = hex_bytes(f["record grid"])
    assert region_mask(region) == grid  # type: ignore[arg-type]
    cells = grid_cells(grid)
    assert cells[:3, :4].all() and cells.sum() == 12
    ts_us = int(f["ts_us"])
    assert hex_bytes(f["record ts"]) == ts_us.to_bytes(8, "little", signed=True)

    store = MotionStore(tmp_path, flush_interval_s=None)
    try:
        store.append(f["camera"], ts_us, grid)
        store.flush()
        path = tmp_path / f["file"].split()[0]
        assert path.read_bytes() == hex_bytes(f["header"]) + hex_bytes(f["record ts"]) + grid
        words = f["search"].split()
        area = tuple(float(v) for v in words[:4])
        found = (int(words[5]), int(words[6]))
        assert store.search(f["camera"], ts_us - 1, ts_us + 1, area) == [found]  # type: ignore[arg-type]
    finally:
        store.close()


# --- export.md -------------------------------------------------------------------------------


def test_export_manifest_example_signs_and_verifies(tmp_path: Path) -> None:
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.export import verify_export as workstation_verify
    from server.export.manifest import public_raw
    from server.protocol.manifest import (
        MANIFEST,
        PUBLIC_KEY,
        SIGNATURE,
        Manifest,
        canonical_json,
        key_id,
        verify_export,
    )

    parsed = json.loads("\n".join(example("export.md", "export-manifest")))
    manifest = Manifest.from_bytes(json.dumps(parsed).encode())
    data = manifest.to_bytes()
    assert data == canonical_json(parsed)  # every field of the example is a manifest field
    f = fields(example("export.md", "export-signature"))
    assert len(data) == int(f["manifest.json"].split()[0])

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(f["private key"]))
    pub = public_raw(key)
    assert base64.b64encode(pub).decode() == f["server.pub"]
    assert key_id(pub) == f["key id"]
    assert base64.b64encode(key.sign(data)).decode() == f["manifest.sig"]

    content = re.search(r'"(.*)" and a newline', f[manifest.files[0].name])
    assert content
    (tmp_path / manifest.files[0].name).write_bytes(content.group(1).encode() + b"\n")
    (tmp_path / MANIFEST).write_bytes(data)
    (tmp_path / SIGNATURE).write_text(f["manifest.sig"] + "\n")
    (tmp_path / PUBLIC_KEY).write_text(f["server.pub"] + "\n")
    for verify in (verify_export, workstation_verify):
        report = verify(tmp_path, pub)
        assert (report.ok, report.trusted, report.key_id) == (True, True, f["key id"]), verify

    (tmp_path / manifest.files[0].name).write_bytes(b"not really a videO\n")  # same size
    for verify in (verify_export, workstation_verify):
        report = verify(tmp_path, pub)
        assert report.problems == ["door-main.mp4 was modified (SHA-256 differs)"], verify


# --- webrtc.md -------------------------------------------------------------------------------


def test_whep_timeline_example_through_fanout_hub_and_track() -> None:
    import asyncio
    from fractions import Fraction

    import av

    from server.clock import SystemClock
    from server.live.fanout import Fanout
    from server.recording.packets import IngestPacket, StreamInfo
    from server.webrtc.hub import StreamHub
    from server.webrtc.track import PacketTrack

    lines = example("webrtc.md", "whep-timeline")
    num, den = fields(lines)["time base"].split("/")
    info = StreamInfo("h264", 640, 360, Fraction(int(num), int(den)), None, 25.0)
    steps = [x.split() for x in lines[2:]]
    expected = [int(s[3]) for s in steps if s[0] == "packet"]

    async def run() -> list[int]:
        fanout = Fanout()
        sink = fanout.sink("door", "main")  # what the ingest thread calls
        hub = StreamHub(asyncio.get_running_loop(), fanout, "door", "main")
        track = PacketTrack(SystemClock())
        hub.tracks.add(track)
        for s in steps:
            if s[0] == "connect":
                sink.on_connect(info)
            else:
                pts = int(s[1])
                frame = av.Packet(b"\0\0\0\1" + (b"\x65" if s[2] == "K" else b"\x41"))
                sink.on_packet(IngestPacket(frame, pts, pts, s[2] == "K", 0, frame.size))
        got = [(await asyncio.wait_for(track.recv(), 5)).pts for _ in expected]
        hub.close()
        track.stop()
        return got

    assert asyncio.run(run()) == expected


# --- workstation.md --------------------------------------------------------------------------


def test_discovery_txt_example_round_trips() -> None:
    from server.protocol.discovery import SERVICE_TYPE, Advertisement, advertisement_from_txt

    lines = example("workstation.md", "discovery-txt")
    f = fields(lines)
    txt = dict(
        re.split(r"\s{2,}", x, maxsplit=1)[1].split("=", 1) for x in lines if x.startswith("txt")
    )
    adv = Advertisement(
        server_id=txt["id"],
        name=f["name"],
        port=int(f["port"]),
        version=txt["version"],
        tls=txt["tls"] == "1",
        nats=txt["nats"],
    )
    assert adv.txt() == txt  # same keys, values and order as on the wire
    assert list(adv.txt()) == list(txt)
    assert f"{adv.instance_name()}.{SERVICE_TYPE}" == f["instance"]
    assert advertisement_from_txt(txt, int(f["port"])) == adv


# --- api.md ----------------------------------------------------------------------------------


def test_api_error_example_is_the_error_body() -> None:
    import json

    from server.api.errors import error_response

    body = json.loads("\n".join(example("api.md", "api-error")))
    response = error_response(404, body["error"]["code"], body["error"]["message"])
    assert response.status == 404
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == body


# --- the documents themselves ----------------------------------------------------------------

ROOT = DESIGN.parent.parent
SECTIONS = (
    "## Objective",
    "## Background",
    "## Design",
    "## Alternatives considered",
    "## Caveats",
)


def test_every_design_doc_has_the_recording_form() -> None:
    docs = sorted(DESIGN.glob("*.md"))
    assert len(docs) >= 8
    for doc in docs:
        text = doc.read_text()
        assert re.search(r"^Status: \*\*[a-z ]+\*\*", text, re.MULTILINE), f"{doc.name}: status"
        at = [text.find(s + "\n") for s in SECTIONS]
        assert all(i > 0 for i in at) and at == sorted(at), f"{doc.name}: sections {at}"


def test_every_tagged_example_is_checked_here() -> None:
    here = Path(__file__).read_text()
    for doc in DESIGN.glob("*.md"):
        for name in re.findall(r"^```\w* example=(\S+)$", doc.read_text(), re.MULTILINE):
            assert f'"{name}")' in here, f"{doc.name}: example {name!r} is not checked"


def test_links_between_documents_resolve() -> None:
    for doc in [ROOT / "README.md", *ROOT.joinpath("docs").rglob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links {target}"


def test_code_cites_repo_documents_that_exist() -> None:
    cited = set()
    for package in ("server", "app", "ui"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert "design §" not in text, (
                f"{path.relative_to(ROOT)} cites a design outside the repo"
            )
            cited |= set(re.findall(r"docs/[\w/.-]+\.md", text))
    assert cited, "no code cites docs/ at all"
    for doc in sorted(cited):
        assert (ROOT / doc).is_file(), f"code cites {doc}, which does not exist"
