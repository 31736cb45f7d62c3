"""Translation upkeep: which visible strings the code has, which the pt_BR file lacks.

The widgets translate through small ``_tr(text)`` wrappers (``QCoreApplication.translate`` with
the module's context), which ``pyside6-lupdate`` does not follow; this reads the modules' syntax
trees instead. ``python -m ui.i18n check ui/*.py`` lists strings without a translation (exit 1
when any); ``python -m ui.i18n compile`` rebuilds the ``.qm`` with ``pyside6-lrelease``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TS_FILE = ROOT / "resources" / "translations" / "vigia_pt_BR.ts"


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _translate_call(node: ast.AST) -> tuple[str, str] | None:
    """``QCoreApplication.translate("Ctx", "text")`` → (ctx, text)."""
    if not isinstance(node, ast.Call) or len(node.args) < 2:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "translate":
        return None
    ctx, text = _literal(node.args[0]), _literal(node.args[1])
    return (ctx, text) if ctx is not None and text is not None else None


def strings(path: Path) -> set[tuple[str, str]]:
    """(context, source) of every literal the module passes to translate or its ``_tr``."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    wrapper_ctx: str | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_tr":
            for inner in ast.walk(node):
                call = inner if isinstance(inner, ast.Call) else None
                if call is not None and call.args and len(call.args) >= 2:
                    ctx = _literal(call.args[0])
                    if ctx is not None and isinstance(call.func, ast.Attribute):
                        wrapper_ctx = ctx
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        direct = _translate_call(node)
        if direct is not None:
            found.add(direct)
        elif (
            wrapper_ctx is not None
            and isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "_tr"
            and node.args
        ):
            text = _literal(node.args[0])
            if text is not None:
                found.add((wrapper_ctx, text))
    return found


def translations(ts: Path = TS_FILE) -> dict[tuple[str, str], str]:
    root = ET.parse(ts).getroot()
    out = {}
    for context in root.iter("context"):
        name = context.findtext("name", "")
        for message in context.iter("message"):
            text = message.findtext("translation") or ""
            out[(name, message.findtext("source", ""))] = text
    return out


def missing(paths: Iterable[Path], ts: Path = TS_FILE) -> list[tuple[str, str]]:
    """Strings of ``paths`` with no (or an empty) translation in ``ts``."""
    have = translations(ts)
    wanted = set().union(*(strings(p) for p in paths))
    return sorted(key for key in wanted if not have.get(key))


def add(pairs: dict[tuple[str, str], str], ts: Path = TS_FILE) -> int:
    """Add or replace translations; returns how many changed. Keeps the rest of the file."""
    tree = ET.parse(ts)
    root = tree.getroot()
    contexts = {c.findtext("name", ""): c for c in root.iter("context")}
    changed = 0
    for (ctx, source), text in sorted(pairs.items()):
        context = contexts.get(ctx)
        if context is None:
            context = contexts[ctx] = ET.SubElement(root, "context")
            ET.SubElement(context, "name").text = ctx
        message = next((m for m in context.iter("message") if m.findtext("source") == source), None)
        if message is None:
            message = ET.SubElement(context, "message")
            ET.SubElement(message, "source").text = source
            ET.SubElement(message, "translation")
        node = message.find("translation")
        assert node is not None
        if node.text != text:
            node.text, changed = text, changed + 1
    ET.indent(tree, "    ")
    lines = ET.tostring(root, encoding="unicode").splitlines()
    # Qt Linguist's layout: <context> at the left margin, not indented under <TS>
    body = "\n".join([lines[0], *(line.removeprefix("    ") for line in lines[1:-1]), lines[-1]])
    ts.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n' + body + "\n", encoding="utf-8"
    )
    return changed


def compile_ts(ts: Path = TS_FILE) -> Path:
    """``pyside6-lrelease`` the .ts next to it (the venv's, else the PATH's)."""
    venv_tool = Path(sys.executable).with_name("pyside6-lrelease")
    tool = str(venv_tool) if venv_tool.exists() else shutil.which("pyside6-lrelease")
    if tool is None:
        raise FileNotFoundError("pyside6-lrelease not found (pip install PySide6-Essentials)")
    qm = ts.with_suffix(".qm")
    subprocess.run([tool, str(ts), "-qm", str(qm)], check=True, capture_output=True)
    return qm


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compile"]:
        print(compile_ts())
        return 0
    if args[:1] == ["check"]:
        gaps = missing([Path(p) for p in args[1:]])
        for ctx, source in gaps:
            print(f"{ctx}\t{source!r}")
        return 1 if gaps else 0
    print("usage: python -m ui.i18n check FILE... | compile", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
