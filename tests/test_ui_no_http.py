"""Widgets make no HTTP call: every REST call lives in an ``app/`` model (``app/remote.py``).

import-linter keeps ``ui`` from importing ``app.api`` and the HTTP/NATS libraries
(``pyproject.toml``); this test closes the other door: a widget that got hold of the API
client anyway (``session.api``, the ``api`` argument of ``Session.call``) and called one of its
request methods. It reads ``ui/`` as source (no Qt needed).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from app.api import ApiClient

ROOT = Path(__file__).resolve().parents[1]
# every coroutine method of the client: request, get_json, post_json, patch_json, delete, ...
CLIENT_METHODS = frozenset(
    name for name, fn in vars(ApiClient).items() if inspect.iscoroutinefunction(fn)
)
# names no other object of ours has: a call of one is a REST call whatever the receiver
CLIENT_ONLY = frozenset(m for m in CLIENT_METHODS if "_" in m)


def _last(node: ast.expr) -> str:
    """The last name of a receiver: ``session`` of ``self.session``."""
    return ast.unparse(node).rsplit(".", 1)[-1]


def http_calls(source: str, filename: str = "<ui>") -> list[str]:
    """``file:line: code`` for each place that calls the API client or reaches for it."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, last = node.func.attr, _last(node.func.value)
            if (
                method in CLIENT_ONLY
                or (method in CLIENT_METHODS and last in ("api", "client", "http"))
                or (method == "call" and last == "session")  # Session.call(fn(api))
            ):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and (
            node.attr == "call_sync" or (node.attr == "api" and _last(node.value) == "session")
        ):  # the other ways to the client: Session.call_sync, Session.api
            found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id == "ApiClient":
            found.append(f"{where}: ApiClient")
    return found


def test_the_check_finds_a_rest_call_in_a_widget() -> None:
    assert {"request", "get_json", "post_json", "patch_json", "delete"} <= CLIENT_METHODS
    widget = (
        "def reload(self, session):\n"
        "    self.tasks.api(session, lambda api: api.get_json('/users'), ok, fail)\n"
        "    session.call_sync(lambda api: api.request('DELETE', '/x'))\n"
        "    self.runner.submit(session.call(lambda a: a.post_json('/cameras', {})))\n"
        "    session.api.delete('/cameras/a')\n"
    )
    found = http_calls(widget)
    assert any("get_json" in f for f in found)
    assert any("call_sync" in f for f in found)
    assert any("api.request(" in f for f in found)
    assert any("post_json" in f for f in found)
    assert any("session.call(" in f for f in found)
    assert any("session.api.delete(" in f for f in found)
    # what widgets do call stays allowed: models, timers, the wall
    assert http_calls("self.layouts.delete(name)\nself._worker.request((m, 1))\n") == []


def test_ui_makes_no_http_call() -> None:
    files = sorted((ROOT / "ui").rglob("*.py"))
    assert len(files) > 20
    found = []
    for path in files:
        found += http_calls(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "REST calls in widgets (move them to an app/ model):\n" + "\n".join(found)
