"""User accounts, password hashing and the role/camera permission rules.

Passwords are hashed with scrypt (standard library, memory-hard) into a self-describing string
``scrypt$n$r$p$salt_b64$hash_b64``, so the cost can be raised later and old hashes still verify
(and are upgraded at the next good login). The permission rules are plain functions of a
:class:`User`, so the HTTP layer and the NATS credential issuer decide the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import bcrypt

from server.catalog import Catalog
from server.clock import Clock

log = logging.getLogger(__name__)

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MIN_DISTINCT_CHARACTERS = 4
MAX_PASSWORD_LENGTH = 1024  # bounds the work one login request can ask for
FIRST_ADMIN_NAME = "admin"
MQTT_BCRYPT_ROUNDS = 10  # nats-server checks it at every MQTT connect: ~50 ms here

_NAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_CAMERA_RE = re.compile(r"[a-z0-9_-]{1,64}")


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class Permission(StrEnum):
    LIVE = "live"  # watch live video
    ARCHIVE = "archive"  # play recordings, read segments, events and tracks
    EXPORT = "export"  # make and download exports
    BOOKMARKS = "bookmarks"  # create, edit, lock and delete bookmarks
    CONFIG = "config"  # cameras, storage and server settings
    USERS = "users"  # accounts and their rights
    AUDIT = "audit"  # read the audit log
    PTZ = "ptz"  # steer PTZ cameras and keep their presets


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {
            Permission.LIVE,
            Permission.ARCHIVE,
            Permission.EXPORT,
            Permission.BOOKMARKS,
            Permission.PTZ,
        }
    ),
    Role.VIEWER: frozenset({Permission.LIVE, Permission.ARCHIVE}),
}
"""What each role may do; camera-scoped permissions are further limited by :func:`can_see`."""


class UserError(ValueError):
    """A request the account rules refuse (bad name, weak password, last admin, ...)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    all_cameras: bool
    cameras: frozenset[str]
    disabled: bool


def can_see(user: User, camera_id: str) -> bool:
    """Whether ``user`` may see anything of ``camera_id`` (live, archive, events)."""
    if user.disabled:
        return False
    return user.role == Role.ADMIN or user.all_cameras or camera_id in user.cameras


def allowed(user: User, permission: Permission | str, camera_id: str | None = None) -> bool:
    """Whether ``user`` may use ``permission``, on ``camera_id`` when given.

    An unknown permission name raises ``ValueError``: a typo must not quietly deny (or grant).
    """
    if user.disabled or Permission(permission) not in ROLE_PERMISSIONS[user.role]:
        return False
    return camera_id is None or can_see(user, camera_id)


# --- password hashing ------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return "$".join(
        ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def check_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, n_s, r_s, p_s, salt_s, digest_s = encoded.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, digest = base64.b64decode(salt_s), base64.b64decode(digest_s)
    except ValueError:
        log.error("unreadable password hash in the catalog")
        return False
    # bounds keep a tampered row from making one login allocate gigabytes
    if scheme != "scrypt" or n < 2 or n & (n - 1) or n > 2**20 or not 1 <= r <= 32 or p > 16:
        log.error("unsupported password hash parameters in the catalog")
        return False
    too_long = len(password) > MAX_PASSWORD_LENGTH
    if too_long:
        password = ""  # still do the work: the answer must not come faster
    candidate = _scrypt(password, salt, n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest) and not too_long


def mqtt_hash(password: str) -> str:
    """What nats-server checks an MQTT login's password against (bcrypt)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(MQTT_BCRYPT_ROUNDS)).decode()


def needs_rehash(encoded: str) -> bool:
    return not encoded.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n + 2**20
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash of nothing anyone knows, checked for unknown users so timing does not tell."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


# --- accounts --------------------------------------------------------------------------------


class Users:
    """Accounts in the catalog. Thread-safe through the catalog's lock; scrypt runs outside it."""

    def __init__(self, catalog: Catalog, clock: Clock) -> None:
        self.catalog = catalog
        self.clock = clock

    def add(
        self, name: str, password: str, role: Role | str, cameras: Iterable[str] | None = None
    ) -> User:
        """Create an account. ``cameras=None``: every camera; a list: only those."""
        _check_name(name)
        _check_password(password)
        role = _role(role)
        grants = _cameras(cameras)
        encoded = hash_password(password)
        all_cameras = grants is None or role == Role.ADMIN
        try:
            with self.catalog.transaction() as c:
                cur = c.execute(
                    "INSERT INTO users (name, password_hash, role, all_cameras, created_us,"
                    " mqtt_hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, encoded, role.value, int(all_cameras), self.clock.now_us(),
                     mqtt_hash(password)),
                )  # fmt: skip
                user_id = int(cur.lastrowid)
                _write_grants(c, user_id, () if all_cameras else grants or ())
        except sqlite3.IntegrityError as e:
            if "UNIQUE" in str(e):
                raise UserError(f"user {name!r} already exists") from None
            raise
        log.info("user %s added (role %s)", name, role.value)
        return self._by_id(user_id)

    def set_password(self, name: str, password: str) -> None:
        """Change a password and end the user's sessions everywhere."""
        _check_password(password)
        encoded = hash_password(password)
        with self.catalog.transaction() as c:
            user_id = _id_of(c, name)
            c.execute(
                "UPDATE users SET password_hash = ?, mqtt_hash = ? WHERE id = ?",
                (encoded, mqtt_hash(password), user_id),
            )
            c.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
        log.info("user %s: password changed, sessions ended", name)

    def set_role(self, name: str, role: Role | str) -> User:
        """Change a role; an admin sees every camera. The last admin cannot be demoted."""
        role = _role(role)
        with self.catalog.transaction() as c:
            user_id = _id_of(c, name)
            if role == Role.ADMIN:
                c.execute("DELETE FROM user_cameras WHERE user_id = ?", (user_id,))
                c.execute(
                    "UPDATE users SET role = 'admin', all_cameras = 1 WHERE id = ?", (user_id,)
                )
            else:
                _refuse_losing_last_admin(c, user_id)
                c.execute("UPDATE users SET role = ? WHERE id = ?", (role.value, user_id))
        log.info("user %s: role %s", name, role.value)
        return self._by_id(user_id)

    def set_cameras(self, name: str, cameras: Iterable[str] | None) -> User:
        """Give rights on every camera (``None``) or on exactly the listed ones."""
        grants = _cameras(cameras)
        with self.catalog.transaction() as c:
            user_id = _id_of(c, name)
            (role,) = c.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()
            if role == Role.ADMIN and grants is not None:
                raise UserError("an admin sees every camera; change the role first")
            c.execute("DELETE FROM user_cameras WHERE user_id = ?", (user_id,))
            c.execute(
                "UPDATE users SET all_cameras = ? WHERE id = ?", (int(grants is None), user_id)
            )
            _write_grants(c, user_id, grants or ())
        return self._by_id(user_id)

    def disable(self, name: str) -> None:
        """Refuse the user's logins and end its sessions; the last enabled admin stays."""
        with self.catalog.transaction() as c:
            user_id = _id_of(c, name)
            _refuse_losing_last_admin(c, user_id)
            c.execute("UPDATE users SET disabled = 1 WHERE id = ?", (user_id,))
            c.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
        log.info("user %s disabled", name)

    def enable(self, name: str) -> None:
        with self.catalog.transaction() as c:
            c.execute("UPDATE users SET disabled = 0 WHERE id = ?", (_id_of(c, name),))
        log.info("user %s enabled", name)

    # --- the site's directory (docs/design/site.md): accounts as records, copied as they are --

    def record(self, name: str) -> tuple[User, str] | None:
        """The account and its password hash, as the site's directory keeps it."""
        row = self.catalog._one("SELECT id, password_hash FROM users WHERE name = ?", (name,))
        if row is None:
            return None
        return self._by_id(row[0]), row[1]

    def mirror(
        self,
        name: str,
        password_hash: str,
        role: Role | str,
        cameras: Iterable[str] | None,
        disabled: bool,
        tokens_before_us: int = 0,
    ) -> User:
        """Make the local account what the site's directory says (a copy: no password rules,
        the hash comes made); sessions issued before ``tokens_before_us`` end."""
        role = _role(role)
        grants = _cameras(cameras)
        all_cameras = grants is None or role == Role.ADMIN
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO users (name, password_hash, role, all_cameras, created_us, disabled)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " password_hash = excluded.password_hash, role = excluded.role,"
                " all_cameras = excluded.all_cameras, disabled = excluded.disabled,"
                " mqtt_hash = CASE WHEN users.password_hash = excluded.password_hash"
                " THEN users.mqtt_hash END",  # another password: made at its next login here
                (name, password_hash, role.value, int(all_cameras), self.clock.now_us(),
                 int(disabled)),
            )  # fmt: skip
            user_id = _id_of(c, name)
            c.execute("DELETE FROM user_cameras WHERE user_id = ?", (user_id,))
            _write_grants(c, user_id, () if all_cameras else grants or ())
            if disabled:
                c.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
            elif tokens_before_us:
                c.execute(
                    "DELETE FROM tokens WHERE user_id = ? AND created_us < ?",
                    (user_id, tokens_before_us),
                )
        return self._by_id(user_id)

    def remove(self, name: str) -> bool:
        """Delete an account (its sessions and rights go with it). Only the site's directory
        does this, to take back an account it could not share; the API disables instead."""
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM users WHERE name = ?", (name,))
        return cur.rowcount > 0

    def mqtt_logins(self, user_id: int | None = None) -> list[tuple[User, str]]:
        """Enabled accounts with their MQTT password hash (all, or ``user_id``'s)."""
        sql = "SELECT id, mqtt_hash FROM users WHERE disabled = 0 AND mqtt_hash IS NOT NULL"
        args: tuple = ()
        if user_id is not None:
            sql, args = sql + " AND id = ?", (user_id,)
        return [(self._by_id(r[0]), r[1]) for r in self.catalog._all(sql, args)]

    def get(self, name: str) -> User | None:
        row = self.catalog._one("SELECT id FROM users WHERE name = ?", (name,))
        return None if row is None else self._by_id(row[0])

    def get_by_id(self, user_id: int) -> User | None:
        return load_user(self.catalog, user_id)

    def list(self) -> list[User]:
        rows = self.catalog._all("SELECT id FROM users ORDER BY name")
        return [self._by_id(user_id) for (user_id,) in rows]

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right and the account enabled, else ``None``.

        Unknown and disabled users cost the same scrypt run as known ones, so the answer's
        timing does not reveal which names exist. Takes tens of ms: call it off the event loop.
        """
        row = self.catalog._one(
            "SELECT id, password_hash, disabled, mqtt_hash FROM users WHERE name = ?", (name,)
        )
        encoded = row[1] if row else _dummy()
        ok = check_password(password, encoded)
        if row is None or not ok or row[2]:
            return None
        if row[3] is None:  # an account from before MQTT logins, or copied from the site
            with self.catalog.transaction() as c:
                c.execute(
                    "UPDATE users SET mqtt_hash = ? WHERE id = ? AND password_hash = ?",
                    (mqtt_hash(password), row[0], encoded),
                )
        if needs_rehash(encoded):
            with self.catalog.transaction() as c:
                c.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    (hash_password(password), row[0], encoded),
                )
            log.info("user %s: password hash upgraded to the current parameters", name)
        return self._by_id(row[0])

    def ensure_first_admin(self, env_password: str | None) -> str | None:
        """Create ``admin`` when there is no user at all (first start).

        Uses ``env_password`` (``VIGIA_ADMIN_PASSWORD``) when given, else generates one and
        returns it so the caller can show it once; it is never logged. Returns ``None`` when
        nothing was generated (users exist, or the given password was used).
        """
        if self.catalog._one("SELECT 1 FROM users LIMIT 1"):
            return None
        generated = None if env_password else secrets.token_urlsafe(12)
        password = env_password or generated
        assert password is not None
        _check_password(password)
        encoded = hash_password(password)
        with self.catalog.transaction() as c:
            (count,) = c.execute("SELECT count(*) FROM users").fetchone()
            if count:  # another process made one meanwhile
                return None
            c.execute(
                "INSERT INTO users (name, password_hash, role, all_cameras, created_us)"
                " VALUES (?, ?, 'admin', 1, ?)",
                (FIRST_ADMIN_NAME, encoded, self.clock.now_us()),
            )
        log.info(
            "first start: user %r created with %s password",
            FIRST_ADMIN_NAME,
            "a generated" if generated else "the VIGIA_ADMIN_PASSWORD",
        )
        return generated

    def can_see(self, user: User, camera_id: str) -> bool:
        return can_see(user, camera_id)

    def visible(self, user: User, camera_ids: Iterable[str]) -> list[str]:
        """The cameras of ``camera_ids`` that ``user`` may see, in order (lists, NATS grants)."""
        return [cam for cam in camera_ids if can_see(user, cam)]

    def _by_id(self, user_id: int) -> User:
        user = load_user(self.catalog, user_id)
        if user is None:
            raise UserError(f"no user with id {user_id}")
        return user


def load_user(catalog: Catalog, user_id: int) -> User | None:
    """One user with its camera rights (shared with token resolution)."""
    row = catalog._one(
        "SELECT id, name, role, all_cameras, disabled FROM users WHERE id = ?", (user_id,)
    )
    if row is None:
        return None
    cams = catalog._all("SELECT camera_id FROM user_cameras WHERE user_id = ?", (user_id,))
    return User(
        id=row[0],
        name=row[1],
        role=Role(row[2]),
        all_cameras=bool(row[3]),
        cameras=frozenset(cam for (cam,) in cams),
        disabled=bool(row[4]),
    )


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise UserError("a user name is 1 to 64 of the characters A-Z a-z 0-9 . _ @ -")


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise UserError(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS or not password.strip():
        # eight spaces, or "aaaaaaaa", were accepted before issue 19
        raise UserError(
            f"a password needs at least {MIN_DISTINCT_CHARACTERS} different characters,"
            " not only spaces"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise UserError("a password has no control characters")


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}; one of {', '.join(Role)}") from None


def _cameras(cameras: Iterable[str] | None) -> frozenset[str] | None:
    if cameras is None:
        return None
    if isinstance(cameras, str):
        raise UserError("cameras is a list of camera ids, not one string")
    grants = frozenset(cameras)
    bad = sorted(cam for cam in grants if not _CAMERA_RE.fullmatch(cam))
    if bad:
        raise UserError(f"not camera ids: {', '.join(bad)}")
    return grants


def _write_grants(c: sqlite3.Connection, user_id: int, cameras: Iterable[str]) -> None:
    c.executemany(
        "INSERT INTO user_cameras (user_id, camera_id) VALUES (?, ?)",
        [(user_id, cam) for cam in sorted(cameras)],
    )


def _id_of(c: sqlite3.Connection, name: str) -> int:
    row = c.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UserError(f"no user {name!r}")
    return int(row[0])


def _refuse_losing_last_admin(c: sqlite3.Connection, user_id: int) -> None:
    """Keep at least one enabled admin, or nobody could manage the server from the API."""
    (others,) = c.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?",
        (user_id,),
    ).fetchone()
    (is_admin,) = c.execute(
        "SELECT count(*) FROM users WHERE id = ? AND role = 'admin' AND disabled = 0", (user_id,)
    ).fetchone()
    if is_admin and not others:
        raise UserError("this is the last enabled admin; make another admin first")
