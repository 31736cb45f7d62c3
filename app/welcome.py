"""The first-run screen's model: the sites and recorders to log in to, and the login itself.

A window with no session (nothing logged in, nothing logging in) shows a welcome screen instead
of an empty wall (docs/design/workstation.md): what zeroconf found, what is saved and what is
logged in, grouped by site (``[site] name``, docs/design/site.md), an address field and the
login. This module is that screen without widgets: ``entries()`` lists, ``needed()`` says when
the screen is due, ``login()`` logs in through ``Workstation.connect`` (the one login path of
the workstation) and turns failures into a ``LoginError`` whose ``kind`` the UI words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from app.api import ApiError
from app.discovery import normalize_url
from app.session import Session
from app.settings import SavedServer
from app.signals import Signal
from app.workstation import Workstation

log = logging.getLogger(__name__)

__all__ = ["LoginError", "Welcome", "WelcomeRecorder", "WelcomeSite"]

LOGIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WelcomeRecorder:
    """One recorder on the screen: found on the network, saved, or logged in (or several)."""

    key: str  # the server id when known, else the address
    name: str
    base_url: str
    version: str = ""
    site: str = ""
    found: bool = False  # advertised by zeroconf now
    saved: bool = False
    user: str = ""  # the saved or logged-in user
    state: str = ""  # the session's ('online', 'reconnecting', ...); "" when not logged in


@dataclass(frozen=True)
class WelcomeSite:
    """A site and its recorders; ``name`` "" is one recorder on its own (no site)."""

    name: str
    recorders: tuple[WelcomeRecorder, ...] = field(default=())

    @property
    def title(self) -> str:
        return self.name or self.recorders[0].name

    @property
    def address(self) -> str:
        """What the address field gets when the site is picked: a recorder that is up."""
        up = [r for r in self.recorders if r.found or r.state == "online"]
        return (up or list(self.recorders))[0].base_url

    @property
    def version(self) -> str:
        return next((r.version for r in self.recorders if r.version), "")

    @property
    def user(self) -> str:
        return next((r.user for r in self.recorders if r.user), "")


class LoginError(Exception):
    """Why a login from the welcome screen failed. ``kind``: 'address' (not a usable
    address), 'refused' (wrong user or password, user disabled), 'unreachable' (nothing
    answers there), 'other' (the recorder answered with another error)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def login_error(exc: BaseException) -> LoginError:
    if isinstance(exc, LoginError):
        return exc
    if isinstance(exc, ValueError):
        return LoginError("address", str(exc))
    if isinstance(exc, TimeoutError):
        return LoginError("unreachable", "no answer in time")
    if isinstance(exc, ApiError):
        if exc.status == 0:  # the message starts with the URL, which the screen says already
            return LoginError("unreachable", exc.message.split(": ", 1)[-1])
        if exc.status in (401, 403):
            return LoginError("refused", exc.message)
        return LoginError("other", exc.message or str(exc))
    return LoginError("other", repr(exc))


class Welcome:
    """Watches the workstation for what the welcome screen shows; ``changed`` after any change
    (emitted on the network loop or the caller's thread: the UI marshals it)."""

    def __init__(self, workstation: Workstation) -> None:
        self.ws = workstation
        self.changed: Signal[Welcome] = Signal("welcome.changed")
        self._logging_in = 0  # logins under way through this model (or announced by the UI)
        emit: Callable[[object], None] = lambda _v: self.changed.emit(self)  # noqa: E731
        sessions, tree = workstation.sessions, workstation.tree
        self._undo = [
            sessions.added.connect(emit),
            sessions.removed.connect(emit),
            sessions.state_changed.connect(emit),
            tree.recorder_changed.connect(emit),
            workstation.settings.changed.connect(emit),
        ]
        if workstation.discovery is not None:
            d = workstation.discovery
            self._undo += [d.added.connect(emit), d.updated.connect(emit), d.removed.connect(emit)]

    def close(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []

    # --- what to show -----------------------------------------------------------------------

    def needed(self) -> bool:
        """True while there is no session: nothing logged in, no login of ours under way, no
        saved recorder on its first attempt. A saved recorder that cannot be reached does not
        hold the screen back (it keeps retrying, and is listed)."""
        if self.ws.sessions.sessions() or self._logging_in:
            return False
        return not any(s.state == "connecting" for s in self.ws.sessions.pending())

    def busy(self, delta: int) -> None:
        """A login started (+1) or ended (-1) elsewhere (``vigia --server``, the connect
        dialog): no welcome screen meanwhile. The screen's own logins keep it up until done."""
        self._logging_in = max(0, self._logging_in + delta)
        self.changed.emit(self)

    def recorders(self) -> list[WelcomeRecorder]:
        """Found, saved and logged-in recorders, one each (keyed on the server id, or the
        address until a login tells who is there)."""
        rows: dict[str, WelcomeRecorder] = {}
        by_url: dict[str, str] = {}

        def put(server_id: str, base_url: str, **values: object) -> None:
            key = server_id or by_url.get(base_url) or base_url
            old = rows.pop(key, None)
            if old is None and server_id and base_url in rows:
                old = rows.pop(base_url)  # learned who is at that address
            merged: dict[str, object] = asdict(old) if old else {}
            merged.update({k: v for k, v in values.items() if v not in ("", None, False)})
            merged.update(key=key, base_url=merged.get("base_url") or base_url)
            merged.setdefault("name", base_url.split("://", 1)[-1])
            rows[key] = WelcomeRecorder(**merged)  # type: ignore[arg-type]
            by_url[base_url] = key

        for saved in self.ws.settings.servers:
            put(saved.server_id, saved.base_url, name=saved.name, user=saved.user,
                site=saved.site, saved=True)  # fmt: skip
        if self.ws.discovery is not None:
            for entry in self.ws.discovery.servers():
                found = entry.source == "zeroconf"
                put(entry.server_id, entry.base_url, name=entry.name, version=entry.version,
                    site=entry.site, found=found)  # fmt: skip
        for s in [*self.ws.sessions.pending(), *self.ws.sessions.sessions()]:
            put(s.server_id, s.base_url, name=s.name, version=s.version, site=s.site,
                user=s.user, state=s.state)  # fmt: skip
        return sorted(rows.values(), key=lambda r: (r.name.casefold(), r.key))

    def entries(self) -> list[WelcomeSite]:
        """``recorders()`` grouped by site; a recorder without a site is an entry of its own.
        Sites first, by name; then recorders on their own, by name."""
        sites: dict[str, list[WelcomeRecorder]] = {}
        alone: list[WelcomeSite] = []
        for rec in self.recorders():
            if rec.site:
                sites.setdefault(rec.site, []).append(rec)
            else:
                alone.append(WelcomeSite("", (rec,)))
        grouped = [WelcomeSite(name, tuple(recs)) for name, recs in sorted(sites.items())]
        return grouped + alone

    # --- logging in -------------------------------------------------------------------------

    def login(
        self,
        address: str,
        user: str,
        password: str,
        *,
        remember: bool = True,
        timeout: float = LOGIN_TIMEOUT_S,
    ) -> Session:
        """Log in (blocking: call from a worker thread); raises ``LoginError``.

        An address of a site's recorder logs in to the site: when that recorder cannot be
        reached the site's other recorders are tried, and once one answers, the site's other
        recorders found on the network are logged in to in the background with the same user.
        """
        if not user.strip():
            raise LoginError("refused", "no user name")
        try:
            url = normalize_url(address)
        except ValueError as exc:
            raise login_error(exc) from None
        site = next((r.site for r in self.recorders() if r.base_url == url and r.site), "")
        others = [
            r.base_url for r in self.recorders() if site and r.site == site and r.base_url != url
        ]
        session, first_error = None, None
        for candidate in [url, *others]:
            try:
                session = self.ws.connect(
                    candidate, user.strip(), password, timeout, remember=remember
                )
                break
            except (ApiError, ValueError, TimeoutError) as exc:
                error = login_error(exc)
                first_error = first_error or error
                if error.kind != "unreachable":
                    raise error from None
                log.info("%s: %s; trying the site's next recorder", candidate, exc)
        if session is None:
            assert first_error is not None
            raise first_error
        self._join_site(session, user.strip(), password, remember)
        return session

    def _join_site(self, session: Session, user: str, password: str, remember: bool) -> None:
        """The site's other recorders, logged in to in the background (one login per site)."""
        if not session.site or self.ws.discovery is None:
            return
        for entry in self.ws.discovery.servers():
            if entry.site != session.site or entry.server_id == session.server_id:
                continue
            if entry.server_id and self.ws.sessions.get(entry.server_id) is not None:
                continue
            self.ws.sessions.connect_later(entry.base_url, user, password)
            if remember:
                saved = SavedServer(entry.base_url, entry.name, entry.server_id, user,
                                    auto_connect=True, site=entry.site)  # fmt: skip
                self.ws.settings.save_server(saved, password)
