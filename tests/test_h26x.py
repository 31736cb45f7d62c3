"""The one H.264/H.265 parameter-set module, on real PyAV-made packets of both codecs."""

from __future__ import annotations

import av
import pytest

from server.live.fanout import Fanout
from server.recording.h26x import (
    START_CODE,
    annexb_to_length_prefixed,
    codec_family,
    config_nals,
    extradata_parameter_sets,
    fill_parameter_sets,
    iter_nals,
    length_prefixed_to_annexb,
    nal_length_size,
    nal_type,
    parameter_sets,
)
from server.recording.packets import IngestPacket, StreamInfo
from server.sim.clips import ClipSpec, make_clip
from tests.helpers import clip_packets, ingest_packet

PARAMS = {"h264": {7, 8}, "hevc": {32, 33, 34}}
AUD_NAL = {"h264": b"\x09\xf0", "hevc": b"\x46\x01\x50"}  # access unit delimiters


@pytest.fixture(scope="module", params=["h264", "hevc"])
def clip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(codec, mp4 path, Annex B packets) of a 2 s clip, GOP 1 s."""
    codec = request.param
    path = make_clip(tmp_path_factory.mktemp("h26x") / f"{codec}.mp4",
                     ClipSpec(320, 180, fps=25, seconds=2, codec=codec, label=codec))  # fmt: skip
    _, packets = clip_packets(path)
    return codec, path, packets


def _types(codec: str, data: bytes) -> list[int]:
    return [nal_type(codec, data[s]) for s, _ in iter_nals(data)]


def _without(codec: str, data: bytes, drop: set[int]) -> bytes:
    return b"".join(START_CODE + data[s:e] for s, e in iter_nals(data)
                    if nal_type(codec, data[s]) not in drop)  # fmt: skip


def _decodes(codec: str, data: bytes) -> bool:
    """A fresh decoder (a viewer joining at this key frame) gets a picture from it alone."""
    ctx = av.CodecContext.create(codec, "r")
    try:
        return bool(ctx.decode(av.Packet(data)) + ctx.decode(None))
    except av.FFmpegError:
        return False


def test_a_complete_key_frame_is_left_alone_and_remembered(clip: tuple) -> None:
    codec, _, packets = clip
    key = packets[0][0]
    assert packets[0][3]
    fill = fill_parameter_sets(codec, key, b"stale")
    assert fill.complete and fill.insert == b"" and fill.apply(key) is key
    assert fill.known == parameter_sets(codec, key)
    assert {nal_type(codec, fill.known[s]) for s, _ in iter_nals(fill.known)} == PARAMS[codec]


def test_missing_and_partial_sets_are_completed(clip: tuple) -> None:
    codec, _, packets = clip
    key = packets[0][0]
    known = parameter_sets(codec, key)
    bare = _without(codec, key, PARAMS[codec])
    assert not _decodes(codec, bare) and _decodes(codec, key)
    fill = fill_parameter_sets(codec, bare, known)
    assert not fill.complete and fill.insert == known and fill.at == 0
    assert _decodes(codec, fill.apply(bare))
    # only the PPS in band (the case the fan-out used to pass on): the whole set goes in
    # front, and the lone PPS does not replace the remembered complete set
    pps_only = _without(codec, key, PARAMS[codec] - {max(PARAMS[codec])})
    assert set(_types(codec, pps_only)) & PARAMS[codec] == {max(PARAMS[codec])}
    assert not _decodes(codec, pps_only)
    fill = fill_parameter_sets(codec, pps_only, known)
    assert fill.insert == known and fill.known == known
    assert _decodes(codec, fill.apply(pps_only))
    # nothing known: nothing inserted, and the caller can tell
    fill = fill_parameter_sets(codec, bare, b"")
    assert fill.insert == b"" and not fill.complete


def test_parameter_sets_go_after_an_access_unit_delimiter(clip: tuple) -> None:
    codec, _, packets = clip
    known = parameter_sets(codec, packets[0][0])
    bare = START_CODE + AUD_NAL[codec] + _without(codec, packets[0][0], PARAMS[codec])
    fill = fill_parameter_sets(codec, bare, known)
    fixed = fill.apply(bare)
    assert fill.at == len(START_CODE + AUD_NAL[codec])
    types = _types(codec, fixed)
    assert types[0] == nal_type(codec, AUD_NAL[codec][0])
    assert set(types[1 : 1 + len(PARAMS[codec])]) == PARAMS[codec]
    assert _decodes(codec, fixed)


def test_avcc_and_hvcc_extradata(clip: tuple) -> None:
    codec, path, packets = clip
    with av.open(str(path)) as c:
        extradata = bytes(c.streams.video[0].codec_context.extradata)
    in_band = parameter_sets(codec, packets[0][0])
    assert extradata[0] == 1 and nal_length_size(codec, extradata) == 4
    assert extradata_parameter_sets(codec, extradata) == in_band
    assert extradata_parameter_sets(codec, in_band) == in_band  # Annex B extradata
    assert [n for n in config_nals(codec, extradata) if nal_type(codec, n[0]) in PARAMS[codec]]
    for cut in (3, len(extradata) // 2, len(extradata) - 1):
        with pytest.raises(ValueError):
            config_nals(codec, extradata[:cut])
        assert extradata_parameter_sets(codec, extradata[:cut]) == b""
    assert nal_length_size(codec, in_band) is None and extradata_parameter_sets(codec, None) == b""


def test_length_prefixed_round_trip(clip: tuple) -> None:
    _, _, packets = clip
    for data, *_ in packets[:30]:
        normal = b"".join(START_CODE + data[s:e] for s, e in iter_nals(data))
        for size in (2, 4):
            lp = annexb_to_length_prefixed(data, size)
            assert length_prefixed_to_annexb(lp, size) == normal
    assert length_prefixed_to_annexb(b"\x00\x00\x00\x09abc", 4) == b""  # length past the end


def test_codec_family() -> None:
    names = [codec_family(n) for n in ("h264", "H264", "hevc", "h265", "H265")]
    assert names == ["h264", "h264", "hevc", "hevc", "hevc"]
    assert codec_family("mpeg4") == "h264"  # as before: anything else is read as H.264


class Collect:
    def __init__(self) -> None:
        self.packets: list[IngestPacket] = []

    def on_connect(self, info: StreamInfo) -> None:
        pass

    def on_packet(self, packet: IngestPacket) -> None:
        self.packets.append(packet)

    def on_disconnect(self, reason: str) -> None:
        pass


def test_the_fanout_completes_a_partial_set(clip: tuple) -> None:
    """Key frames with only a PPS reach fan-out consumers decodable, with the SPS in front."""
    codec, path, packets = clip
    info, _ = clip_packets(path)
    fanout, got = Fanout(), Collect()
    fanout.subscribe("cam", "main", got)
    sink = fanout.sink("cam", "main")
    sink.on_connect(info)
    lone = PARAMS[codec] - {max(PARAMS[codec])}
    keys = 0
    for i, (data, pts, dts, key) in enumerate(packets):
        if key and i:
            data = _without(codec, data, lone)  # later key frames: the PPS only
            keys += 1
        sink.on_packet(ingest_packet(data, pts, dts, key, 0, info.time_base))
    assert keys and fanout.stats("cam", "main").params_added == keys
    for p in got.packets:
        if p.key:
            assert PARAMS[codec] <= set(_types(codec, bytes(p.packet)))
            assert _decodes(codec, bytes(p.packet))
