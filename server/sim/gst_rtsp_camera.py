#!/usr/bin/python3
"""One simulated "camera host": an RTSP server that serves MP4 clips in a loop, live.

Standalone: run it with Debian's ``/usr/bin/python3`` (python3-gi, gir1.2-gst-rtsp-server-1.0);
it imports nothing from the project, nor numpy or PyAV. ``server/sim/rtsp_cameras.py`` starts
and stops these processes from the project's virtual environment.

    /usr/bin/python3 gst_rtsp_camera.py --port 8554 \\
        --mount main=/clips/main.mp4 --mount sub=/clips/sub.mp4 --audio-mount mic

serves ``rtsp://127.0.0.1:8554/main``, ``/sub`` and ``/mic``.

``--mount NAME=PATH``: PATH is an MP4 whose first video track is H.264 or H.265. The codec is
detected from the track's caps while the clip is prerolled, so the depayloader needs no hint.
``--audio-mount NAME``: a mount with a G.711 A-law test tone and no video at all.
``--aac-mount NAME=PATH``: like ``--mount``, plus an AAC audio track (48 kHz mono): a camera
with a microphone. The feeder pushes each frame's stretch of audio with the frame, stamped
with the same running time: silence, except a 1 kHz beep during every frame whose number in
the clip is ``BEEP_FRAME`` modulo the frame rate, so a test can check that the recorded
sound and picture are in sync (the frame number is in the picture's frame code).
``--pcma-mount NAME=PATH``, ``--opus-mount NAME=PATH``: the same with G.711 A-law audio
(8 kHz) or Opus instead of AAC.

Why each mount has a feeder pipeline: looping an elementary stream with multifilesrc gives every
packet PTS 0. Instead ``filesrc ! qtdemux ! h26xparse config-interval=-1 ! appsink sync=true``
plays the clip at real-time pace, with the parameter sets before every key frame, and seeks back
to the start at EOS. Its buffers are pushed, timestamp-free, into the ``appsrc`` of a shared
media (``appsrc do-timestamp=true ! h26xparse ! rtph26xpay``), which stamps them with its own
running time: timestamps keep increasing across loops, and all clients of a mount see one live
stream, like a camera. With no client connected, buffers are dropped. A new client starts at
whatever frame is being played and waits for the next key frame (one per GOP).

The payloader runs with ``config-interval=0`` because the feeder already puts the parameter sets
in band once per access unit; rtph26xpay with ``config-interval=-1`` inserts them again before
every key-frame *slice*, and FFmpeg's RTSP parser then splits a multi-slice key frame into two
packets (the first decodes to a half-refreshed picture).

Protocol with the parent: once the server listens and the clips play, exactly one line
``READY <port>`` goes to stdout. The process exits on SIGTERM/SIGINT and when its stdin reaches
end of file (the parent died), unless ``--ignore-stdin``. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import struct
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

REQUIRED_ELEMENTS = (
    "filesrc",
    "qtdemux",
    "h264parse",
    "h265parse",
    "appsink",
    "appsrc",
    "rtph264pay",
    "rtph265pay",
    "audiotestsrc",
    "alawenc",
    "rtppcmapay",
)

PARSERS = {"video/x-h264": ("h264", "h264parse"), "video/x-h265": ("h265", "h265parse")}
PAYLOADERS = {"h264": "rtph264pay", "h265": "rtph265pay"}
PREROLL_TIMEOUT_S = 10
AUDIO_RATES = {"aac": 48_000, "pcma": 8_000, "opus": 48_000}
AUDIO_CAPS = "audio/x-raw,format=S16LE,layout=interleaved,rate={rate},channels=1"
BEEP_FRAME = 12  # the frame of each second (clip frame number modulo fps) that beeps
BEEP_HZ = 1000


def log(msg: str) -> None:
    """One line to stderr; stdout is reserved for the READY line."""
    try:
        sys.stderr.write(f"gst_rtsp_camera[{os.getpid()}]: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # the parent (reading our stderr) is gone; we are about to exit anyway


class Feeder:
    """Plays one clip in a loop at real-time pace and hands its access units to the live mount."""

    def __init__(self, name: str, path: str, on_fatal, audio: str | None = None) -> None:
        self.name = name
        self.audio = audio  # 'aac'/'pcma': push a stretch of audio (silence, beep) per frame
        self._audio_src: Gst.Element | None = None
        self.path = path
        self.on_fatal = on_fatal
        self.codec: str | None = None
        self.caps: Gst.Caps | None = None
        self._appsrc: Gst.Element | None = None
        self._lock = threading.Lock()
        self.pipeline = Gst.Pipeline.new(f"feed-{name}")
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        self.demux = Gst.ElementFactory.make("qtdemux")
        self.sink = Gst.ElementFactory.make("appsink")
        self.sink.set_property("sync", True)
        self.sink.set_property("emit-signals", True)
        self.sink.set_property("max-buffers", 4)
        for el in (src, self.demux, self.sink):
            self.pipeline.add(el)
        src.link(self.demux)
        self.demux.connect("pad-added", self._on_pad_added)
        self.sink.connect("new-sample", self._on_new_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)

    def _on_pad_added(self, _demux: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        media_type = caps.get_structure(0).get_name()
        if media_type not in PARSERS or self.codec is not None:
            return  # audio tracks, or a second video track: not served
        codec, parser_name = PARSERS[media_type]
        parser = Gst.ElementFactory.make(parser_name)
        parser.set_property("config-interval", -1)  # parameter sets before every key frame
        capsfilter = Gst.ElementFactory.make("capsfilter")
        capsfilter.set_property(
            "caps", Gst.Caps.from_string(f"{media_type},stream-format=byte-stream,alignment=au")
        )
        self.pipeline.add(parser)
        self.pipeline.add(capsfilter)
        parser.link(capsfilter)
        capsfilter.link(self.sink)
        parser.sync_state_with_parent()
        capsfilter.sync_state_with_parent()
        if pad.link(parser.get_static_pad("sink")) != Gst.PadLinkReturn.OK:
            log(f"{self.name}: cannot link the video track of {self.path}")
            return
        self.codec = codec

    def preroll(self) -> None:
        """Load the clip up to its first frame, learning its codec and caps."""
        self.pipeline.set_state(Gst.State.PAUSED)
        ret, _, _ = self.pipeline.get_state(PREROLL_TIMEOUT_S * Gst.SECOND)
        if ret != Gst.StateChangeReturn.SUCCESS or self.codec is None:
            raise RuntimeError(f"{self.path}: no playable H.264/H.265 video track ({ret})")
        self.caps = self.sink.get_static_pad("sink").get_current_caps()

    def play(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def _on_message(self, _bus: Gst.Bus, msg: Gst.Message) -> None:
        if msg.type == Gst.MessageType.EOS:
            # The sink posts EOS once the last frame's duration has elapsed, so the flushing
            # seek keeps the real-time pace. (A non-flushing segment seek would loop without a
            # flush, but qtdemux starts the next segment's running time at the last frame's
            # timestamp, not its end: every loop would lose one frame duration.)
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            self.on_fatal(f"{self.name}: {err.message} ({debug})")

    def attach(self, appsrc: Gst.Element | None, audio_src: Gst.Element | None = None) -> None:
        with self._lock:
            self._appsrc, self._audio_src = appsrc, audio_src

    def detach(self, appsrc: Gst.Element) -> None:
        with self._lock:
            if self._appsrc is appsrc:
                self._appsrc = self._audio_src = None

    def _push_audio(self, audio_src: Gst.Element, frame: Gst.Buffer) -> None:
        """The frame's stretch of audio, pushed right after the frame: both get the same
        running time from their appsrc."""
        duration = frame.duration if frame.duration != Gst.CLOCK_TIME_NONE else Gst.SECOND // 25
        rate = AUDIO_RATES[self.audio or "aac"]
        samples = max(1, round(duration * rate / Gst.SECOND))
        number = round(frame.pts / duration) if frame.pts != Gst.CLOCK_TIME_NONE else 0
        fps = max(1, round(Gst.SECOND / duration))
        beep = number % fps == BEEP_FRAME
        pcm = _beep(samples, rate) if beep else bytes(2 * samples)
        audio_src.emit("push-buffer", Gst.Buffer.new_wrapped(pcm))

    def _on_new_sample(self, sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        with self._lock:
            appsrc = self._appsrc
        if appsrc is None or sample is None:
            return Gst.FlowReturn.OK  # nobody watching: drop, like a camera would
        src_buf = sample.get_buffer()
        # A copy sharing the memory but without timestamps: the appsrc stamps buffers with its
        # own running time, which keeps increasing when the clip loops, but only buffers that
        # have no timestamp.
        buf = src_buf.copy_region(
            Gst.BufferCopyFlags.FLAGS | Gst.BufferCopyFlags.META | Gst.BufferCopyFlags.MEMORY,
            0,
            src_buf.get_size(),
        )
        appsrc.emit("push-buffer", buf)
        with self._lock:
            audio_src = self._audio_src
        if audio_src is not None:
            self._push_audio(audio_src, src_buf)
        return Gst.FlowReturn.OK


def _beep(samples: int, rate: int) -> bytes:
    amplitude = 16_000
    return struct.pack(
        f"<{samples}h",
        *(round(amplitude * math.sin(2 * math.pi * BEEP_HZ * i / rate)) for i in range(samples)),
    )


# generated at the rate the codec takes: a resampler between would re-time the stream
AUDIO_SRC = " appsrc name=asrc is-live=true do-timestamp=true format=time caps={caps}"
AUDIO_BRANCHES = {
    "aac": AUDIO_SRC.format(caps=AUDIO_CAPS.format(rate=AUDIO_RATES["aac"]))
    + " ! audioconvert ! avenc_aac ! rtpmp4gpay name=pay1 pt=97",
    "pcma": AUDIO_SRC.format(caps=AUDIO_CAPS.format(rate=AUDIO_RATES["pcma"]))
    + " ! alawenc ! rtppcmapay name=pay1 pt=8",
    "opus": AUDIO_SRC.format(caps=AUDIO_CAPS.format(rate=AUDIO_RATES["opus"]))
    + " ! audioconvert ! opusenc ! rtpopuspay name=pay1 pt=98",
}


def video_factory(feeder: Feeder) -> GstRtspServer.RTSPMediaFactory:
    parser = PARSERS[feeder.caps.get_structure(0).get_name()][1]
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( appsrc name=src is-live=true do-timestamp=true format=time"
        " max-bytes=8000000 leaky-type=downstream"
        f" ! {parser} ! {PAYLOADERS[feeder.codec]} config-interval=0 name=pay0 pt=96"
        f"{AUDIO_BRANCHES[feeder.audio] if feeder.audio else ''} )"
    )
    factory.set_shared(True)

    def on_media_configure(_factory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", feeder.caps)
        media.connect("unprepared", lambda _media: feeder.detach(appsrc))
        audio_src = media.get_element().get_by_name("asrc") if feeder.audio else None
        feeder.attach(appsrc, audio_src)

    factory.connect("media-configure", on_media_configure)
    return factory


def audio_factory() -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=8000,channels=1"
        " ! alawenc ! rtppcmapay name=pay0 pt=8 )"
    )
    factory.set_shared(True)
    return factory


def check() -> str | None:
    """None when every element this script needs is installed, else what is missing."""
    missing = [e for e in REQUIRED_ELEMENTS if Gst.ElementFactory.find(e) is None]
    return f"missing GStreamer elements: {', '.join(missing)}" if missing else None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (see READY)")
    parser.add_argument("--mount", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--audio-mount", action="append", default=[], metavar="NAME")
    parser.add_argument("--aac-mount", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--pcma-mount", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--opus-mount", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--udp-only", action="store_true", help="refuse RTSP over TCP")
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit at stdin EOF")
    parser.add_argument("--check", action="store_true", help="check the GStreamer install")
    args = parser.parse_args(argv)
    mounts = []
    audio = {
        **{m: "aac" for m in args.aac_mount},
        **{m: "pcma" for m in args.pcma_mount},
        **{m: "opus" for m in args.opus_mount},
    }
    for spec in args.mount + args.aac_mount + args.pcma_mount + args.opus_mount:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--mount wants NAME=PATH, got {spec!r}")
        if not os.path.isfile(path):
            parser.error(f"--mount {name}: no such file {path!r}")
        mounts.append((name.strip("/"), os.path.abspath(path), audio.get(spec)))
    args.mounts = mounts
    return args


def main(argv: list[str]) -> int:
    Gst.init(None)
    args = parse_args(argv)
    if args.check:
        problem = check()
        print(problem or "ok", flush=True)
        return 1 if problem else 0

    loop = GLib.MainLoop()
    exit_code = 0

    def fatal(msg: str) -> None:
        nonlocal exit_code
        log(msg)
        exit_code = 1
        loop.quit()

    def quit_on_signal() -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, quit_on_signal)

    if not args.ignore_stdin:

        def on_stdin(fd: int, _cond: GLib.IOCondition) -> bool:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                loop.quit()  # first: when the parent died, even logging can fail (EPIPE)
                log("stdin closed, exiting")
                return GLib.SOURCE_REMOVE
            return GLib.SOURCE_CONTINUE

        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            on_stdin,
        )

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mount_points = server.get_mount_points()
    feeders = []
    try:
        for name, path, audio in args.mounts:
            if audio == "aac" and Gst.ElementFactory.find("avenc_aac") is None:
                raise RuntimeError(f"/{name}: avenc_aac (gstreamer1.0-libav) is not installed")
            feeder = Feeder(name, path, fatal, audio=audio)
            feeder.preroll()
            feeders.append(feeder)
            factory = video_factory(feeder)
            factory.set_protocols(
                GstRtsp.RTSPLowerTrans.UDP
                if args.udp_only
                else GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP
            )
            mount_points.add_factory(f"/{name}", factory)
            log(f"/{name}: {feeder.codec} from {path}")
    except RuntimeError as exc:
        log(str(exc))
        for feeder in feeders:
            feeder.stop()
        return 2
    for name in args.audio_mount:
        factory = audio_factory()
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        mount_points.add_factory(f"/{name.strip('/')}", factory)

    # attach() creates, binds (GIO sets SO_REUSEADDR) and listens on the socket.
    if server.attach(None) == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        for feeder in feeders:
            feeder.stop()
        return 3
    for feeder in feeders:
        feeder.play()
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()

    loop.run()

    for feeder in feeders:
        feeder.stop()

    # Close client connections so peers see the camera go away now, not at a timeout.
    server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
