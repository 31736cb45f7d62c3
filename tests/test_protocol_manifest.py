"""The export manifest and its check, shared by ``vigia-server verify`` and the workstation."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.export.manifest import public_raw, write_manifest
from server.protocol.manifest import (
    Manifest,
    file_entry,
    key_id,
    verify_export,
)


def _export(out: Path, key: Ed25519PrivateKey, **extra: object) -> Manifest:
    out.mkdir()
    (out / "cam-main.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40)
    (out / "cam-sub.mp4").write_bytes(b"sub stream bytes")
    files = [file_entry(out / n, camera="cam", stream=n[4:-4], start_us=10, end_us=20)
             for n in ("cam-main.mp4", "cam-sub.mp4")]  # fmt: skip
    manifest = Manifest(files=files, cameras=["cam/main", "cam/sub"], start_us=10, end_us=20,
                        exact=False, format="mp4", exported_by="alice", server_id="0123456789ab",
                        created_us=30, **extra)  # type: ignore[arg-type]  # fmt: skip
    write_manifest(out, manifest, key)
    return manifest


def _resign(out: Path, key: Ed25519PrivateKey, doc: dict) -> None:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.sig").write_bytes(base64.b64encode(key.sign(data)))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_an_intact_export_verifies_with_the_trusted_key(tmp_path: Path, key) -> None:
    manifest = _export(tmp_path / "e", key, software="vigia-server test")
    report = verify_export(tmp_path / "e", public_raw(key))
    assert report.ok and report.trusted and report.problems == []
    assert report.key_id == key_id(public_raw(key)) and len(report.key_id) == 16
    assert report.manifest == manifest
    data = (tmp_path / "e" / "manifest.json").read_bytes()
    assert data == manifest.to_bytes() and Manifest.from_bytes(data) == manifest
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    enclosed_only = verify_export(tmp_path / "e")
    assert enclosed_only.ok and not enclosed_only.trusted


def test_tampering_is_named(tmp_path: Path, key) -> None:
    out = tmp_path / "e"
    _export(out, key)
    (out / "cam-sub.mp4").write_bytes(b"sub stream byteZ")
    assert verify_export(out).problems == ["cam-sub.mp4 was modified (SHA-256 differs)"]
    (out / "cam-sub.mp4").write_bytes(b"short")
    assert verify_export(out).problems == ["cam-sub.mp4 has 5 bytes, the manifest says 16"]
    (out / "cam-sub.mp4").unlink()
    (out / "notes.txt").write_text("added later")
    assert verify_export(out).problems == [
        "cam-sub.mp4 is missing",
        "notes.txt is not part of the export",
    ]
    other = Ed25519PrivateKey.generate()
    problems = verify_export(out, public_raw(other)).problems
    assert problems[0].startswith("signed by key ") and "not the trusted key" in problems[0]
    assert "the signature does not match manifest.json (edited, or another key)" in problems


def test_a_manifest_is_decoded_strictly(tmp_path: Path, key) -> None:
    out = tmp_path / "e"
    _export(out, key)
    doc = json.loads((out / "manifest.json").read_bytes())
    doc["added_by_a_later_version"] = {"x": 1}  # unknown fields: ignored (signed all the same)
    _resign(out, key, doc)
    assert verify_export(out).ok
    doc["files"][0]["bytes"] = str(doc["files"][0]["bytes"])  # "30" is not a size
    _resign(out, key, doc)
    report = verify_export(out)
    assert not report.ok and report.manifest is None
    assert report.problems == [
        "manifest.json is not a valid manifest: Expected `int`, got `str` - at `$.files[0].bytes`"
    ]
    doc["files"][0]["bytes"] = 5
    doc["files"][0]["name"] = "../escape.mp4"
    doc["version"] = 2
    _resign(out, key, doc)
    assert verify_export(out).problems == [
        "manifest version 2 is newer than this program's",
        "manifest lists a bad file name '../escape.mp4'",
        "cam-main.mp4 is not part of the export",
    ]


def test_missing_or_garbled_side_files(tmp_path: Path, key) -> None:
    out = tmp_path / "e"
    _export(out, key)
    (out / "server.pub").write_text("not base64!")
    assert verify_export(out).problems == ["manifest.sig or server.pub is not valid base64"]
    (out / "manifest.sig").unlink()
    assert verify_export(out).problems == ["manifest.sig is missing"]
