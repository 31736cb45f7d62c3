"""Named wall layouts: kept per user on this workstation, and shared through the recorder.

Local layouts live in ``<settings dir>/layouts/<user>.json``, written with
``server.protocol.files.write_atomic`` (temp file, fsync, rename, directory fsync): a crash
leaves the old file or the new one. A recorder that has ``/api/v1/layouts`` keeps the user's
layouts too (so they follow the user to any desk) and the shared ones every user sees; a
recorder that answers 404 simply has none. A layout is the wall's ``to_dict()``; it is checked
with ``app.walllayout.parse_layout`` before it is kept or shown, so a bad one is refused with
the reason and nothing is lost.

Every method of ``Layouts`` but ``user`` and ``local`` blocks for the recorders' answers: a
widget runs them off the Qt thread (``ui.bridge``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.api import ApiClient, ApiError
from app.session import Session
from app.signals import Signal
from app.walllayout import parse_layout
from app.workstation import Workstation
from server.protocol.files import write_atomic
from server.protocol.timeutil import now_us

log = logging.getLogger(__name__)

VERSION = 1
TIMEOUT_S = 5.0
_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")
_FILE_LOCK = threading.Lock()  # saves run on worker threads: one read-modify-write at a time


@dataclass(frozen=True)
class NamedLayout:
    name: str
    layout: dict[str, Any]
    owner: str = ""
    shared: bool = False
    updated_us: int = 0
    origin: str = "local"  # 'local' or the server id of the recorder that keeps it


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("a layout name has 1 to 100 characters")
    return name


class LocalLayouts:
    """One user's layouts in a JSON file of this workstation."""

    def __init__(self, directory: Path, user: str) -> None:
        self.file = Path(directory) / "layouts" / f"{_SAFE.sub('_', user) or '_'}.json"
        self.user = user

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            aside = self.file.with_name(f"{self.file.name}.bad-{int(time.time())}")
            self.file.replace(aside)
            log.error("layouts file %s unreadable (%s); kept as %s", self.file, exc, aside)
            return {}
        layouts = doc.get("layouts") if isinstance(doc, dict) else None
        return layouts if isinstance(layouts, dict) else {}

    def _write(self, layouts: dict[str, dict[str, Any]], last: dict | None = None) -> None:
        if last is None:
            last = self.last()
        doc: dict[str, Any] = {"version": VERSION, "layouts": layouts}
        if last is not None:
            doc["last"] = last
        data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        write_atomic(self.file, data.encode("utf-8"))

    def list(self) -> list[NamedLayout]:
        out = []
        for name, entry in sorted(self._read().items()):
            layout = entry.get("layout") if isinstance(entry, dict) else None
            try:
                parse_layout(layout)
            except ValueError as exc:
                log.warning("local layout %r skipped: %s", name, exc)
                continue
            assert isinstance(layout, dict)
            out.append(NamedLayout(name, layout, self.user, False, int(entry.get("updated_us", 0))))
        return out

    def save(self, name: str, layout: dict[str, Any]) -> NamedLayout:
        name = check_name(name)
        parse_layout(layout)
        with _FILE_LOCK:
            layouts = self._read()
            entry = NamedLayout(name, layout, self.user, False, now_us())
            layouts[name] = {"layout": layout, "updated_us": entry.updated_us}
            self._write(layouts)
        return entry

    def last(self) -> dict[str, Any] | None:
        """The wall as the user left it (saved when the window closed), if usable."""
        try:
            doc = json.loads(self.file.read_text(encoding="utf-8"))
            parse_layout(doc["last"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return doc["last"]

    def save_last(self, layout: dict[str, Any]) -> None:
        parse_layout(layout)
        with _FILE_LOCK:
            self._write(self._read(), last=layout)

    def delete(self, name: str) -> bool:
        with _FILE_LOCK:
            layouts = self._read()
            if layouts.pop(name, None) is None:
                return False
            self._write(layouts)
        return True


class RemoteLayouts:
    """The layouts a recorder keeps (``/api/v1/layouts``); ``supported`` is False after a 404."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.supported: bool | None = None  # None: not asked yet

    def _call(self, fn: Callable[[ApiClient], Any]) -> Any:
        try:
            result = self.session.call_sync(fn, TIMEOUT_S)
        except ApiError as exc:
            if exc.status in (404, 405):
                self.supported = False
                return None
            raise
        self.supported = True
        return result

    def list(self) -> list[NamedLayout]:
        """The user's own and the shared layouts; [] when the recorder has no layouts API."""
        rows = self._call(lambda api: api.get_json("/layouts"))
        out = []
        for row in rows or []:
            try:
                parse_layout(row.get("layout"))
                out.append(
                    NamedLayout(
                        str(row["name"]),
                        row["layout"],
                        str(row.get("owner", "")),
                        bool(row.get("shared", False)),
                        int(row.get("updated_us", 0)),
                        self.session.server_id,
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("recorder layout %r skipped: %s", row, exc)
        return out

    def save(self, name: str, layout: dict[str, Any], shared: bool = False) -> NamedLayout | None:
        """None when the recorder has no layouts API; ApiError when it refuses."""
        name = check_name(name)
        parse_layout(layout)
        path = f"/layouts/{quote(name, safe='')}"
        body = {"layout": layout, "shared": shared}
        row = self._call(lambda api: _put_json(api, path, body))
        if row is None:
            return None
        return NamedLayout(
            name,
            layout,
            str(row.get("owner", self.session.user)),
            shared,
            int(row.get("updated_us", 0)),
            self.session.server_id,
        )

    def delete(self, name: str, owner: str | None = None) -> bool:
        path = f"/layouts/{quote(name, safe='')}"
        try:
            self.session.call_sync(
                lambda api: api.request("DELETE", path, params={"owner": owner}), TIMEOUT_S
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def pick_layouts(layouts: list[NamedLayout], names: list[str], user: str) -> dict[str, NamedLayout]:
    """The layout shown for each name: the local one, else ``user``'s own on a recorder, else
    a shared one (names without any are left out)."""
    order = sorted(layouts, key=lambda lay: (lay.origin != "local", lay.owner != user))
    out: dict[str, NamedLayout] = {}
    for lay in order:
        if lay.name in names:
            out.setdefault(lay.name, lay)
    return out


async def _put_json(api: ApiClient, path: str, body: Any) -> Any:
    _, data, _ = await api.request("PUT", path, json=body)
    return json.loads(data) if data else {}


class Layouts:
    """Local and recorder layouts of the signed-in user, by name.

    The user is the first connected recorder's login (else the OS user). ``changed`` fires
    after a save or a delete (with the layout's name), so every menu that lists them can
    fetch again.
    """

    def __init__(self, workstation: Workstation) -> None:
        self.workstation = workstation
        self._remote: dict[str, RemoteLayouts] = {}
        self.changed: Signal[str] = Signal("layouts.changed")

    def user(self) -> str:
        sessions = self.workstation.sessions.sessions()
        if sessions:
            return sessions[0].user
        return os.environ.get("USER") or os.environ.get("USERNAME") or "local"

    def local(self) -> LocalLayouts:
        return LocalLayouts(self.workstation.settings.dir, self.user())

    def remotes(self) -> list[RemoteLayouts]:
        out = []
        for session in self.workstation.sessions.sessions():
            remote = self._remote.get(session.server_id)
            if remote is None or remote.session is not session:
                remote = self._remote[session.server_id] = RemoteLayouts(session)
            if session.state == "online" and remote.supported is not False:
                out.append(remote)
        return out

    def list(self) -> list[NamedLayout]:
        """Local layouts first, then each recorder's (its failures are logged, not raised)."""
        out = self.local().list()
        for remote in self.remotes():
            try:
                out.extend(remote.list())
            except ApiError as exc:
                log.warning("layouts of %s unavailable: %s", remote.session.name, exc)
        return out

    def get(self, name: str) -> NamedLayout | None:
        """By name: the local one, else the user's own on a recorder, else a shared one."""
        return pick_layouts(self.list(), [name], self.user()).get(name)

    def names(self) -> list[str]:
        return sorted({lay.name for lay in self.list()}, key=str.casefold)

    def save(self, name: str, layout: dict[str, Any], *, shared: bool = False) -> list[str]:
        """Keep locally and on every connected recorder that has layouts; returns where
        ('local' and server ids). ValueError for a bad name or layout, ApiError when a
        recorder refuses (e.g. sharing without the right)."""
        where = []
        if not shared:
            self.local().save(name, layout)
            where.append("local")
        for remote in self.remotes():
            if remote.save(name, layout, shared) is not None:
                where.append(remote.session.server_id)
        if not where:
            raise ValueError("no connected recorder keeps shared layouts")
        self.changed.emit(check_name(name))
        return where

    def delete(self, name: str) -> int:
        """Delete the user's own layout of that name everywhere; returns how many went."""
        count = int(self.local().delete(name))
        for remote in self.remotes():
            try:
                count += int(remote.delete(name))
            except ApiError as exc:
                log.warning("could not delete %r on %s: %s", name, remote.session.name, exc)
        if count:
            self.changed.emit(name)
        return count
