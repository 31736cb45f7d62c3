"""The bucket, through boto3: one kept client (its connection pool is shared by the upload
threads), the store's own SHA-256 check on every upload, and errors turned into one line a
person can act on.

botocore's own retries are off: the uploader retries with backoff and jitter
(``server.protocol.backoff``), so a store that is down sees one probe at a time, not a storm.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import msgspec
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from server.config import ArchiveConfig

log = logging.getLogger(__name__)

ENV_ACCESS_KEY = "VIGIA_ARCHIVE_ACCESS_KEY"
ENV_SECRET_KEY = "VIGIA_ARCHIVE_SECRET_KEY"

# what the store says -> what to do about it
_HINTS = {
    "SignatureDoesNotMatch": "wrong secret key (check VIGIA_ARCHIVE_SECRET_KEY)",
    "InvalidAccessKeyId": "unknown access key (check VIGIA_ARCHIVE_ACCESS_KEY)",
    "AccessDenied": "access denied: the key may not write to this bucket",
    "NoSuchBucket": "the bucket does not exist (make it first)",
    "BadDigest": "the store received other bytes than were sent (SHA-256 mismatch)",
    "InvalidBucketName": "invalid bucket name",
}


class StoreError(RuntimeError):
    """A failed request, as one line; ``code`` is the store's error code or the failure kind."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


class _KeyFile(msgspec.Struct, forbid_unknown_fields=True):
    access_key: str
    secret_key: str


def load_credentials(cfg: ArchiveConfig) -> Credentials:
    """Keys from ``credentials_file`` (TOML) when named, else from the environment."""
    if cfg.credentials_file:
        path = Path(cfg.credentials_file).expanduser()
        try:
            keys = msgspec.toml.decode(path.read_bytes(), type=_KeyFile, strict=True)
        except (OSError, msgspec.DecodeError) as exc:
            raise StoreError(f"archive credentials_file {path}: {exc}", "Credentials") from None
        return Credentials(keys.access_key, keys.secret_key)
    access, secret = os.environ.get(ENV_ACCESS_KEY), os.environ.get(ENV_SECRET_KEY)
    if not access or not secret:
        raise StoreError(
            f"archive: no keys: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} or credentials_file",
            "Credentials",
        )
    return Credentials(access, secret)


def describe(exc: BaseException) -> StoreError:
    """A boto error -> ``StoreError`` with a line that says what is wrong."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", "error"))  # fmt: skip
        hint = _HINTS.get(code, err.get("Message") or code)
        return StoreError(f"{code}: {hint}", code)
    if isinstance(exc, BotoCoreError):
        return StoreError(f"store unreachable: {exc}", "Unreachable")
    return StoreError(f"{type(exc).__name__}: {exc}", type(exc).__name__)


def b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _quiet_client_logs() -> None:
    """botocore and urllib3 log each signed request at DEBUG: not what a recorder's debug log
    is for (their warnings still show)."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


class ArchiveStore:
    """One bucket and prefix. Thread-safe (boto3 clients are); keys given here are relative to
    the prefix."""

    def __init__(self, cfg: ArchiveConfig, credentials: Credentials, pool: int = 8) -> None:
        self.bucket, self.prefix = cfg.bucket, cfg.prefix
        _quiet_client_logs()
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            region_name=cfg.region,
            config=BotoConfig(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=pool,
                # the body is not hashed again for the signature (botocore would read every
                # file twice over plain HTTP): the signed x-amz-checksum-sha256 header already
                # binds the request to its bytes, and the store checks them against it
                s3={"addressing_style": "path", "payload_signing_enabled": False},
                # we send our own SHA-256 (the catalog's); botocore need not hash again
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def _call(self, name: str, **kw: Any) -> Any:
        try:
            return getattr(self.client, name)(Bucket=self.bucket, **kw)
        except (ClientError, BotoCoreError) as exc:
            raise describe(exc) from None

    def check(self) -> None:
        """One cheap signed request: wrong keys, a missing bucket or a dead store show here."""
        self._call("list_objects_v2", MaxKeys=1, Prefix=self.prefix)

    def put(self, relative: str, body: bytes | IO[bytes], size: int, sha256_hex: str,
            content_type: str = "application/octet-stream") -> None:  # fmt: skip
        """Upload one object; the store refuses it (``BadDigest``) unless its bytes hash to
        ``sha256_hex``. A PUT is all or nothing: a half-sent object does not exist."""
        self._call(
            "put_object",
            Key=self.key(relative),
            Body=body,
            ContentLength=size,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=b64_sha256(sha256_hex),
        )

    def get(self, relative: str, byte_range: str | None = None) -> bytes:
        kw = {"Range": byte_range} if byte_range else {}
        body = self._call("get_object", Key=self.key(relative), **kw)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def open(self, relative: str, byte_range: str | None = None) -> dict:
        """The raw GetObject answer (streamed ``Body``, ``ContentRange``, ``ContentLength``)."""
        kw = {"Range": byte_range} if byte_range else {}
        return self._call("get_object", Key=self.key(relative), **kw)

    def delete(self, relatives: list[str]) -> None:
        for start in range(0, len(relatives), 1000):
            chunk = relatives[start : start + 1000]
            self._call(
                "delete_objects",
                Delete={"Objects": [{"Key": self.key(r)} for r in chunk], "Quiet": True},
            )

    def list(self, relative_prefix: str) -> Iterator[tuple[str, int]]:
        """(relative key, size) of every object under ``relative_prefix``."""
        token = None
        while True:
            kw: dict[str, Any] = {"Prefix": self.key(relative_prefix)}
            if token:
                kw["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kw)
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix) :], int(obj["Size"])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]
