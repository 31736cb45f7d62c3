"""Command line of ``vigia-server``: run the recorder, or maintain its data directory."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from msgspec.structs import replace

from server import __version__
from server.config import CameraConfig, Config, ConfigError, load_config, parse_roles
from server.datadir import DataDir, DataDirBusy, default_data_dir

log = logging.getLogger("vigia-server")

COMMANDS = ("run", "check", "verify", "user", "models", "doctor", "archive")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", type=Path, help="recordings and catalog (default: %(default)s)", default=None
    )
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--log-level", default=os.environ.get("VIGIA_LOG_LEVEL", "INFO"))
    p.add_argument("--log-json", action="store_true", help="log JSON lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigia-server",
        description="Vigia recorder: pulls H.264/H.265 camera streams and records them, "
        "without transcoding, into crash-safe fragmented MP4 segments indexed in SQLite.",
        epilog="Commands: 'vigia-server [run] [options]' records (the default); "
        "'vigia-server check [--repair]' reconciles catalog and files; "
        "'vigia-server verify EXPORT_DIR' checks an export's signature and files; "
        "'vigia-server models import-darknet CFG WEIGHTS NAMES' converts a detector to ONNX; "
        "'vigia-server doctor' checks this host's set-up and says what to fix.",
    )
    parser.add_argument("--version", action="version", version=f"vigia-server {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="record (the default command)")
    _common(run)
    run.add_argument(
        "--demo",
        nargs="?",
        type=int,
        const=4,
        default=None,
        metavar="N",
        help="add N simulated cameras (default 4) made from generated clips",
    )
    run.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="HTTP API address (default 127.0.0.1:8480; the API server is "
        "delivered by the service issue, the flag is accepted now)",
    )
    run.add_argument(
        "--nats-url",
        default=None,
        help="publish live video to this NATS server or cluster instead of starting one",
    )
    run.add_argument(
        "--roles",
        default=None,
        help="what this process does: 'all' (default) or a list of ingest, record, live, api; "
        "e.g. recorders on several hosts with 'ingest,record,live' sharing one --nats-url",
    )
    chk = sub.add_parser("check", help="reconcile the catalog with the files on disk")
    _common(chk)
    chk.add_argument(
        "--repair",
        action="store_true",
        help="fix what is found (loses nothing: unknown files go to lost+found)",
    )
    usr = sub.add_parser("user", help="add a user or change a password (VIGIA_PASSWORD or asked)")
    _common(usr)
    usr.add_argument("action", choices=["add", "passwd"])
    usr.add_argument("name")
    usr.add_argument("--role", choices=["admin", "operator", "viewer"], default="viewer")
    usr.add_argument(
        "--cameras", default=None, metavar="A,B", help="only these cameras (default: all)"
    )
    ver = sub.add_parser("verify", help="check an export: signature, file sizes and SHA-256")
    _common(ver)
    ver.add_argument("export_dir", type=Path, metavar="EXPORT_DIR")
    ver.add_argument(
        "--key",
        type=Path,
        metavar="SERVER_PUB",
        help="trust this public key (a server.pub fetched from the recorder) instead of "
        "the signing key in the data directory",
    )
    doc = sub.add_parser(
        "doctor",
        help="check config, data dir, free space, NATS, cameras and archive; say what to fix "
        "(exit status 1 when a check fails)",
    )
    _common(doc)
    arc = sub.add_parser("archive", help="the copy in object storage ([archive])")
    arc_sub = arc.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    arc_ver = arc_sub.add_parser(
        "verify", help="read archived segments back and check their SHA-256 against the catalog"
    )
    _common(arc_ver)
    arc_ver.add_argument("--sample", type=int, default=None, metavar="N",
                         help="check N segments drawn at random (default: all)")  # fmt: skip
    arc_res = arc_sub.add_parser(
        "restore", help="rebuild a catalog (cameras, segments, events) from the bucket alone"
    )
    _common(arc_res)
    arc_res.add_argument(
        "--signing-key", type=Path, default=None, metavar="PEM",
        help="the original recorder's keys/export-signing.pem (from your own backup), so that "
        "exports of the restored recorder verify with its public key",
    )  # fmt: skip
    models = sub.add_parser("models", help="detector models")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    imp = models_sub.add_parser(
        "import-darknet",
        help="convert a Darknet YOLO model (cfg, weights, class names) to ONNX for the detector",
    )
    _common(imp)
    imp.add_argument("cfg", type=Path, metavar="CFG")
    imp.add_argument("weights", type=Path, metavar="WEIGHTS")
    imp.add_argument("names", type=Path, metavar="NAMES")
    imp.add_argument(
        "--out", type=Path, default=None, help="ONNX file (default: DATA_DIR/models/CFG_STEM.onnx)"
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    return build_parser().parse_args(argv)


def _data_dir(args: argparse.Namespace, config: Config) -> DataDir:
    return DataDir((args.data_dir or config.data_dir or default_data_dir()).expanduser())


def demo_cameras(data: DataDir, count: int) -> list[CameraConfig]:
    from server.sim.clips import demo_clips  # heavy (numpy, cv2): only for --demo

    log.info(
        "preparing %d demo cameras (clips are made once, then cached in %s)", count, data.clips
    )
    cams = []
    for i, (main, sub) in enumerate(demo_clips(data.clips, count), start=1):
        cams.append(
            CameraConfig(
                id=f"demo{i}",
                name=f"Demo camera {i}",
                main=main.resolve().as_uri(),
                sub=sub.resolve().as_uri(),
                retention_days=1.0,
            )
        )
    return cams


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from server.service import open_services, serve

    data = _data_dir(args, config)
    if args.listen:
        config = replace(config, listen=args.listen)
    if args.nats_url:
        config = replace(config, nats=replace(config.nats, url=args.nats_url))
    if args.roles:
        config = replace(config, roles=parse_roles(args.roles))
    if args.demo:
        data.root.mkdir(parents=True, exist_ok=True)
        config = replace(config, cameras=(*config.cameras, *demo_cameras(data, args.demo)))
    services = open_services(config, data)
    asyncio.run(serve(config, services))
    return 0


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from server.catalog import Catalog
    from server.catalog.report import inspect_catalog
    from server.recording.recovery import check

    data = _data_dir(args, config)
    if not data.catalog.exists():
        print(f"no catalog at {data.catalog}", file=sys.stderr)
        return 2
    data.lock()
    catalog = Catalog(data.catalog)
    report = check(catalog, data, repair=args.repair)
    health = inspect_catalog(catalog, repair=args.repair)  # after check: its repairs count
    catalog.close()
    problems = [*report.problems, *health.findings]
    for p in problems:
        print(p)
    print(health.summary())
    left = [p for p in problems if not p.repaired]
    print(
        f"checked {report.segments_checked} segments: {len(problems)} problems"
        + (f", {len(problems) - len(left)} repaired" if args.repair else "")
    )
    return 1 if left else 0


def cmd_user(args: argparse.Namespace, config: Config) -> int:
    """Accounts from the command line; safe while the recorder runs (SQLite WAL)."""
    import getpass

    from server.auth import UserError, Users
    from server.catalog import Catalog
    from server.clock import SystemClock

    data = _data_dir(args, config)
    data.create()
    password = os.environ.get("VIGIA_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
    catalog = Catalog(data.catalog)
    try:
        users = Users(catalog, SystemClock())
        if args.action == "add":
            cameras = [c for c in args.cameras.split(",") if c] if args.cameras else None
            users.add(args.name, password, args.role, cameras)
            print(f"user {args.name} added ({args.role})")
        else:
            users.set_password(args.name, password)
            print(f"password of {args.name} changed; their sessions ended")
    except UserError as exc:
        print(f"vigia-server: {exc}", file=sys.stderr)
        return 2
    finally:
        catalog.close()
    return 0


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    from server.export.manifest import load_public_key, read_public_key_file, verify_export

    if not args.export_dir.is_dir():
        print(f"no export directory at {args.export_dir}", file=sys.stderr)
        return 2
    if args.key:
        try:
            trusted, source = read_public_key_file(args.key), str(args.key)
        except (OSError, ValueError) as exc:
            print(f"cannot read the key {args.key}: {exc}", file=sys.stderr)
            return 2
    else:
        data = _data_dir(args, config)
        trusted, source = load_public_key(data), f"the signing key of {data.root}"
    report = verify_export(args.export_dir, trusted)
    for problem in report.problems:
        print(problem)
    if not report.ok:
        print(f"FAILED: {len(report.problems)} problem(s) in {args.export_dir}")
        return 1
    assert report.manifest is not None
    print(
        f"OK: {len(report.manifest.files)} file(s) intact, signed by key {report.key_id}"
        + (f", {source}" if report.trusted else "")
    )
    if not report.trusted:
        print(
            "warning: no trusted key (use --key SERVER_PUB or --data-dir): this shows the files "
            "are as signed, not who signed them"
        )
    return 0


def cmd_models(args: argparse.Namespace, config: Config) -> int:
    from server.analytics.darknet import DarknetError, darknet_to_onnx

    out = args.out or _data_dir(args, config).root / "models" / f"{args.cfg.stem}.onnx"
    try:
        darknet_to_onnx(args.cfg, args.weights, args.names, out)
    except DarknetError as exc:
        print(f"vigia-server: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def cmd_archive(args: argparse.Namespace, config: Config) -> int:
    from server.archive import ArchiveStore, StoreError, load_credentials

    if not config.archive.enabled:
        print("vigia-server: no [archive] endpoint in the configuration", file=sys.stderr)
        return 2
    try:
        store = ArchiveStore(config.archive, load_credentials(config.archive))
        store.check()
    except StoreError as exc:
        print(f"vigia-server: archive: {exc}", file=sys.stderr)
        return 2
    data = _data_dir(args, config)
    if args.archive_command == "restore":
        from server.archive.restore import RestoreError, restore

        try:
            summary = restore(store, data, args.signing_key)
        except (RestoreError, StoreError) as exc:
            print(f"vigia-server: restore: {exc}", file=sys.stderr)
            return 1
        print(summary)
        return 0
    from server.archive.ledger import Ledger
    from server.archive.verify import verify_archive
    from server.catalog import Catalog

    if not data.catalog.exists():
        print(f"no catalog at {data.catalog}", file=sys.stderr)
        return 2
    catalog = Catalog(data.catalog)
    try:
        report = verify_archive(Ledger(catalog), store, args.sample)
    finally:
        catalog.close()
    for problem in report.problems:
        print(problem)
    verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
    print(f"{verdict}: {report.checked} archived segment(s), {report.bytes} bytes read back")
    return 0 if report.ok else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    """Config errors are a finding here, not an exit: the rest is checked with the defaults."""
    from server.doctor import FAIL, Finding, run_checks

    try:
        config = load_config(args.config)
        config_problem = None
    except ConfigError as exc:
        config, config_problem = Config(), Finding(FAIL, "config", str(exc), "fix the file")
    findings = run_checks(config, args.config, _data_dir(args, config))
    if config_problem is not None:
        findings[0] = config_problem
    for finding in findings:
        print(finding.line(), flush=True)
    failed = sum(1 for f in findings if f.status == FAIL)
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    from server.logs import setup_logging

    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level, args.log_json)
    if args.command == "doctor":
        return cmd_doctor(args)
    try:
        config = load_config(args.config)
        if args.command == "check":
            return cmd_check(args, config)
        if args.command == "user":
            return cmd_user(args, config)
        if args.command == "verify":
            return cmd_verify(args, config)
        if args.command == "models":
            return cmd_models(args, config)
        if args.command == "archive":
            return cmd_archive(args, config)
        return cmd_run(args, config)
    except (ConfigError, DataDirBusy) as exc:
        print(f"vigia-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
