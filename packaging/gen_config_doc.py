"""Generates docs/configuration.md, the reference of ``vigia.toml``, from ``server/config.py``.

Usage: ``python packaging/gen_config_doc.py`` prints it; ``--write`` updates the file
(tests/test_config_doc.py checks the committed one is current).

Sections are the fields of ``ConfigFile`` (the file's shape; ``Config`` where there is none):
a field whose type is a section class is a ``[table]``, a tuple of section classes an
``[[array of tables]]``, plain fields are ``[server]`` (as ``load_config`` reads them). Section
classes may be dataclasses or msgspec Structs: their fields, types, defaults and bounds are read
generically; a key's description is its ``Annotated`` metadata's ``description`` (msgspec
``Meta``), else the comment at the end of its line; the class docstring describes the section.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import io
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "configuration.md"
MISSING = object()


@dataclasses.dataclass
class Key:
    name: str
    type: str
    default: str
    doc: str


def is_section(tp: Any) -> bool:
    if not isinstance(tp, type):
        return False
    if dataclasses.is_dataclass(tp):
        return True
    try:
        import msgspec
    except ImportError:
        return False
    return issubclass(tp, msgspec.Struct)


def section_fields(cls: type) -> list[tuple[str, Any, Any]]:
    """(name, resolved type, default or MISSING) of a dataclass or msgspec Struct."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        out = []
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = MISSING
            out.append((f.name, hints[f.name], default))
        return out
    import msgspec

    out = []
    for f in msgspec.structs.fields(cls):
        if f.default is not msgspec.NODEFAULT:
            default = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        else:
            default = MISSING
        out.append((f.encode_name, f.type, default))
    return out


def metas(tp: Any) -> list[Any]:
    """The ``Annotated`` metadata (e.g. msgspec ``Meta``) anywhere in a type, outermost last."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return [*metas(args[0]), *tp.__metadata__]
    if origin in (typing.Union, types.UnionType):
        return [m for a in args for m in metas(a)]
    return []


def description(tp: Any) -> str:
    found = [m.description for m in metas(tp) if getattr(m, "description", None)]
    return found[-1] if found else ""


def bounds(tp: Any) -> str:
    """``>= 1, <= 3600`` from ge/gt/le/lt in the type's metadata (a pattern is not shown)."""
    out = []
    for meta in metas(tp):
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                big = isinstance(value, int) and abs(value) >= 10_000
                out.append(f"{sign} {value:_}" if big else f"{sign} {value}")
    return ", ".join(out)


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        name = " or ".join(type_name(a) for a in rest)
        return f"{name} (optional)" if len(rest) < len(args) else name
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (set, frozenset):  # read from a string, e.g. roles = "ingest,record"
        return f"comma-separated {type_name(args[0])}s" if args else "comma-separated list"
    if origin in (tuple, list):
        return f"array of {type_name(args[0])}" if args else "array"
    if origin is dict:
        return "table"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(f'"{m.value}"' for m in tp)
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if tp in names:
        return names[tp]
    return getattr(tp, "__name__", str(tp))


def toml_value(value: Any) -> str:
    if value is MISSING:
        return "required"
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, enum.Enum):
        return toml_value(value.value)
    if isinstance(value, (set, frozenset)):
        return '`"' + ",".join(sorted(map(str, value))) + '"`'
    if isinstance(value, (tuple, list)):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"`{value:_}`"
    return f"`{value}`"


def line_comments(module_file: Path) -> dict[str, dict[str, str]]:
    """class name → {field name → the comment at the end of its line}."""
    text = module_file.read_text()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            fields = out.setdefault(node.name, {})
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    last = item.end_lineno or item.lineno
                    doc = comments.get(last) or comments.get(item.lineno, "")
                    fields[item.target.id] = doc
    return out


def section_keys(cls: type, comments: dict[str, dict[str, str]]) -> list[Key]:
    docs = comments.get(cls.__name__, {})
    keys = []
    for name, tp, default in section_fields(cls):
        kind = type_name(tp)
        if limits := bounds(tp):
            optional = kind.endswith(" (optional)")
            kind = kind.removesuffix(" (optional)") + f", {limits}"
            kind += " (optional)" if optional else ""
        keys.append(Key(name, kind, toml_value(default), description(tp) or docs.get(name, "")))
    return keys


def render_table(keys: list[Key]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for k in keys:
        doc = k.doc.replace("|", "\\|")
        rows.append(f"| `{k.name}` | {k.type} | {k.default} | {doc} |")
    return rows


def class_doc(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    generated = doc.startswith(cls.__name__ + "(")  # dataclasses make one from the signature
    return "" if generated else " ".join(doc.split()).replace("``", "`")


def element_section(tp: Any) -> type | None:
    """The section class of ``tuple[Section, ...]`` (an array of tables), else None."""
    if typing.get_origin(tp) in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if len(args) == 1 and is_section(args[0]):
            return args[0]
    return None


def generate() -> str:
    sys.path.insert(0, str(ROOT))
    from server import config as module

    comments = line_comments(Path(module.__file__))
    # the file's shape where the module has one, else the runtime configuration
    root = getattr(module, "ConfigFile", None) or module.Config
    plain: list[Key] = []
    tables: list[tuple[str, type]] = []
    arrays: list[tuple[str, type]] = []
    root_docs = comments.get(root.__name__, {})
    for name, tp, default in section_fields(root):
        if is_section(tp):
            tables.append((name, tp))
        elif (element := element_section(tp)) is not None:
            arrays.append((name, element))
        else:
            doc = description(tp) or root_docs.get(name, "")
            plain.append(Key(name, type_name(tp), toml_value(default), doc))
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by packaging/gen_config_doc.py from server/config.py; do not edit. -->",
        "",
        "`vigia-server --config vigia.toml` reads a TOML file; every key is optional unless",
        "marked required, and unknown keys are refused. Command-line flags (`--data-dir`,",
        "`--listen`, `--nats-url`, `--roles`) override the file. The Debian package installs",
        "`/etc/vigia/vigia.toml`; `vigia-server doctor --config FILE` checks a configuration.",
        "",
    ]
    if plain:
        out += ["## `[server]`", "", *render_table(plain), ""]
    for name, cls in tables:
        out += [f"## `[{name}]`", ""]
        if doc := class_doc(cls):
            out += [doc, ""]
        out += [*render_table(section_keys(cls, comments)), ""]
    for name, cls in arrays:
        out += [f"## `[[{name}]]`", "", "One table per entry."]
        if doc := class_doc(cls):
            out += ["", doc]
        out += ["", *render_table(section_keys(cls, comments)), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    text = generate()
    if "--write" in sys.argv[1:]:
        OUT.write_text(text)
        print(f"wrote {OUT}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
