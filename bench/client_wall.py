#!/usr/bin/env python3
"""Live wall throughput: frames the tiles make ready per second, against raw PyAV decoding.

For N tiles (16 and 64 by default), the same sub-stream packets (320x180 H.264, 25 fps, a key
frame a second, Annex B with parameter sets in band: what the recorder publishes) go through

- **raw**: N threads, each a plain ``av.CodecContext`` (one thread, as a sub-stream tile) that
  decodes its copy of the packets as fast as it can: the decode capacity of this machine;
- **tiles**: N ``app.live.LiveTile`` s, the whole decode stage (header parse, bounded queue,
  decoder thread with continuity and overload logic, hand-over of the newest frame as planes
  into the ``FrameSlot``). One feeder thread offers each tile the live messages through
  ``LiveTile.feed`` (the entry point the NATS callback uses), keeping every queue ``--depth``
  packets deep, so the tiles never wait for input and never overflow; NATS itself is left out
  because live cameras deliver in real time and the network loop is not what limits a wall.

Figures: frames decoded per second by the tiles over raw (goal >= 90 %), and how many of them
were shown (put in the slot: a tile shows the newest frame of what it took at once, so with a
queue several deep not every decoded frame is shown). Both runs alternate and repeat; medians.

    python bench/client_wall.py [--quick] [--tiles 16,64] [--packets 600] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/client_wall.py` from a checkout

import av  # noqa: E402
from av.bitstream import BitStreamFilterContext  # noqa: E402

from app.live import LiveTile, TileConfig  # noqa: E402
from server.protocol.live import FLAG_KEY, LiveCodec, encode_live_packet  # noqa: E402
from server.sim.clips import ClipSpec, make_clip  # noqa: E402

FRAME_US = 40_000


def clip_packets(directory: Path) -> list[tuple[bytes, bool]]:
    """Annex B packets of an 8 s 320x180 sub-stream clip, starting at a key frame."""
    path = directory / "wall-sub.mp4"
    if not path.exists():
        make_clip(path, ClipSpec(320, 180, fps=25, seconds=8, label="wall", scene=1))
    out: list[tuple[bytes, bool]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        bsf = BitStreamFilterContext("h264_mp4toannexb", stream)
        for packet in container.demux(stream):
            for p in bsf.filter(packet):
                if p.size:
                    out.append((bytes(p), bool(p.is_keyframe)))
    if not out or not out[0][1]:
        raise SystemExit("the clip does not start with a key frame")
    return out


def live_messages(packets: list[tuple[bytes, bool]], count: int) -> list[bytes]:
    """``count`` live messages looping the clip (it starts at a key frame, so loops decode)."""
    base = time.time_ns() // 1000
    msgs = []
    for i in range(count):
        data, key = packets[i % len(packets)]
        pts = base + i * FRAME_US
        msgs.append(
            encode_live_packet(
                data,
                flags=FLAG_KEY if key else 0,
                codec=LiveCodec.H264,
                seq=i,
                pts_us=pts,
                dts_us=pts,
                duration_us=FRAME_US,
            )
        )
    return msgs


def run_raw(n: int, packets: list[tuple[bytes, bool]], count: int) -> dict[str, float]:
    start = threading.Barrier(n + 1)
    frames = [0] * n

    def work(i: int) -> None:
        ctx = av.CodecContext.create("h264", "r")
        ctx.thread_type = "AUTO"
        ctx.thread_count = 1
        start.wait()
        got = 0
        for j in range(count):
            got += len(ctx.decode(av.Packet(packets[j % len(packets)][0])))
        frames[i] = got

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"frames": sum(frames), "seconds": wall, "fps": sum(frames) / wall}


def run_tiles(
    n: int, messages: list[bytes], depth: int, prefer: list[str] | None
) -> dict[str, float]:
    # fed faster than real time, a saturated machine is the point, not an overload to react to
    config = TileConfig(queue_limit=max(64, depth * 4), slow_decode_ratio=float("inf"))
    tiles = [
        LiveTile(None, None, "bench", f"cam{i}", "sub", prefer, config=config) for i in range(n)
    ]
    room = threading.Event()
    for t in tiles:
        t.slot.frame_ready.connect(lambda _f: room.set())
        t.start()
    sent = [0] * n
    total = len(messages)
    t0 = time.perf_counter()
    while True:
        room.clear()
        busy = False
        for i, tile in enumerate(tiles):
            k = sent[i]
            while k < total and tile.queued < depth:
                tile.feed(messages[k])
                k += 1
            sent[i] = k
            busy = busy or k < total
        if not busy:
            break
        room.wait(0.01)

    # the last packets: wait until every tile has decoded what it was given
    def done() -> int:
        return sum(t.stats().frames_decoded + t.stats().frames_dropped for t in tiles)

    while done() < n * total:
        room.clear()
        if not room.wait(5) and not any(t.queued for t in tiles):
            print(f"  warning: {n * total - done()} packets unaccounted for", file=sys.stderr)
            break
    wall = time.perf_counter() - t0
    stats = [t.stats() for t in tiles]
    for t in tiles:
        t.stop()
    decoded = sum(s.frames_decoded for s in stats)
    return {
        "frames": decoded,
        "shown": sum(s.frames_shown for s in stats),
        "dropped": sum(s.frames_dropped for s in stats),
        "overloaded_tiles": sum(s.keyframes_only for s in stats),
        "decoders": sorted({s.decoder for s in stats}),
        "seconds": wall,
        "fps": decoded / wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer packets, two rounds (~1 min)")
    ap.add_argument("--tiles", default="16,64", help="tile counts, comma separated")
    ap.add_argument("--packets", type=int, default=None, help="packets per tile")
    ap.add_argument("--rounds", type=int, default=None, help="alternating raw/tiles rounds")
    ap.add_argument("--depth", type=int, default=12, help="packets kept queued per tile")
    ap.add_argument("--prefer", default="software", help="decoder kinds for the tiles, or 'auto'")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    counts = [int(x) for x in args.tiles.split(",") if x]
    per_tile = args.packets or (500 if args.quick else 1500)
    rounds = args.rounds or (2 if args.quick else 3)
    prefer = None if args.prefer == "auto" else args.prefer.split(",")

    with tempfile.TemporaryDirectory(prefix="vigia-wall-") as tmp:
        packets = clip_packets(Path(tmp))
    messages = live_messages(packets, per_tile)
    results = []
    print(f"{per_tile} packets a tile (320x180 H.264, GOP 25), {rounds} rounds, depth {args.depth}")
    print(f"{'tiles':>5} {'raw fps':>9} {'tile fps':>9} {'ratio':>7} {'shown/s':>8} {'decoder':>9}")
    for n in counts:
        raw_runs, tile_runs = [], []
        for r in range(rounds):
            order = ("raw", "tiles") if r % 2 == 0 else ("tiles", "raw")
            for what in order:
                if what == "raw":
                    raw_runs.append(run_raw(n, packets, per_tile))
                else:
                    tile_runs.append(run_tiles(n, messages, args.depth, prefer))
        raw_fps = statistics.median(r["fps"] for r in raw_runs)
        tile_fps = statistics.median(r["fps"] for r in tile_runs)
        shown = statistics.median(r["shown"] / r["seconds"] for r in tile_runs)
        row = {
            "tiles": n,
            "raw_fps": round(raw_fps, 1),
            "tile_fps": round(tile_fps, 1),
            "ratio": round(tile_fps / raw_fps, 3),
            "shown_per_s": round(shown, 1),
            "raw_runs": raw_runs,
            "tile_runs": tile_runs,
        }
        results.append(row)
        decoders = ",".join(tile_runs[-1]["decoders"])
        print(
            f"{n:>5} {raw_fps:>9.0f} {tile_fps:>9.0f} {tile_fps / raw_fps:>6.1%} "
            f"{shown:>8.0f} {decoders:>9}",
            flush=True,
        )
    out = {
        "bench": "client_wall",
        "when": datetime.now().isoformat(timespec="seconds"),
        "method": "tiles fed through LiveTile.feed at max rate vs raw PyAV threads",
        "packets_per_tile": per_tile,
        "rounds": rounds,
        "depth": args.depth,
        "goal_ratio": 0.9,
        "results": results,
    }
    try:
        from bench.record import git_state, machine

        out["machine"], out["git"] = machine(), git_state()
    except Exception as exc:  # the figures matter more than the metadata
        out["machine_error"] = str(exc)
    path = args.json
    if path is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = (
            ROOT / "bench" / "results" / f"client-wall-{stamp}{'-quick' if args.quick else ''}.json"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
