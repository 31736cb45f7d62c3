"""docs/configuration.md is generated from server/config.py and kept current; the generator
reads dataclass and msgspec Struct sections alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

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
    assert "| `min_free_bytes` | integer (optional) | `1_000_000_000` |" in committed


class StructSection(msgspec.Struct, frozen=True):
    """A section as a msgspec Struct."""

    port: int = 8480  # where it listens
    hosts: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class DataclassSection:
    port: int = 8480  # where it listens
    hosts: tuple[str, ...] = ()
    name: str | None = None


def test_struct_and_dataclass_sections_read_alike() -> None:
    gen = _generator()
    comments = gen.line_comments(ROOT / "tests" / "test_config_doc.py")
    keys = [gen.section_keys(cls, comments) for cls in (StructSection, DataclassSection)]
    assert keys[0] == keys[1]
    port, hosts, name = keys[0]
    assert (port.name, port.type, port.default, port.doc) == (
        "port", "integer", "`8480`", "where it listens"
    )  # fmt: skip
    assert (hosts.type, hosts.default) == ("array of string", "`[]`")
    assert (name.type, name.default) == ("string (optional)", "not set")
