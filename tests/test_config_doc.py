"""docs/configuration.md is generated from server/config.py and kept current; the generator
reads dataclass and msgspec Struct sections alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import msgspec

from tests.conftest import ROOT

GENERATOR = ROOT / "packaging" / "gen_config_doc.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_doc", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_current() -> None:
    out = subprocess.run(
        [sys.executable, str(GENERATOR)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert out.stdout == committed, "run: python packaging/gen_config_doc.py --write"
    for section in ("[server]", "[storage]", "[recording]", "[nats]", "[[cameras]]"):
        assert f"## `{section}`" in committed
    assert "| `min_free_bytes` | integer, >= 0 (optional) | `1_000_000_000` |" in committed


class StructSection(msgspec.Struct, frozen=True):
    """A section as a msgspec Struct."""

    port: int = 8480  # where it listens
    hosts: tuple[str, ...] = ()
    name: str | None = None
    limit: Annotated[int | None, msgspec.Meta(ge=1, description="at most this many")] = None


@dataclass(frozen=True)
class DataclassSection:
    port: int = 8480  # where it listens
    hosts: tuple[str, ...] = ()
    name: str | None = None
    limit: Annotated[int | None, msgspec.Meta(ge=1, description="at most this many")] = None


def test_struct_and_dataclass_sections_read_alike() -> None:
    gen = _generator()
    comments = gen.line_comments(ROOT / "tests" / "test_config_doc.py")
    keys = [gen.section_keys(cls, comments) for cls in (StructSection, DataclassSection)]
    assert keys[0] == keys[1]
    port, hosts, name, limit = keys[0]
    assert (port.name, port.type, port.default, port.doc) == (
        "port", "integer", "`8480`", "where it listens"
    )  # fmt: skip
    assert (hosts.type, hosts.default) == ("array of string", "`[]`")
    assert (name.type, name.default) == ("string (optional)", "not set")
    assert (limit.type, limit.doc) == ("integer, >= 1 (optional)", "at most this many")


def test_packaged_default_config_loads_and_its_example_camera_too(tmp_path) -> None:
    """The recorder package's /etc/vigia/vigia.toml, as shipped and with its examples on."""
    from server.config import load_config

    shipped = ROOT / "packaging" / "debian" / "vigia.toml"
    config = load_config(shipped)
    assert config.listen == "127.0.0.1:8480" and config.cameras == ()
    uncommented = tmp_path / "vigia.toml"
    lines = shipped.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [[cameras]]"))
    lines[start:] = [line.removeprefix("# ") for line in lines[start:]]
    uncommented.write_text("\n".join(lines) + "\n")
    (camera,) = load_config(uncommented).cameras
    assert camera.id == "entrance" and camera.sub
