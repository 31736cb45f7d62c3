"""Users and security: password hashing, accounts and rights, tokens, login rate limit, audit.

Everything runs on a real SQLite catalog in a temporary directory with a clock the test moves.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth import (
    ROLE_PERMISSIONS,
    Audit,
    LoginRateLimiter,
    Permission,
    Role,
    Tokens,
    UserError,
    Users,
    allowed,
    can_see,
)
from server.auth.users import check_password, hash_password
from server.catalog import Catalog
from server.catalog.schema import MIGRATIONS, SCHEMA_VERSION

T0_US = 1_700_000_000_000_000
PASSWORD = "correct horse"


class StepClock:
    """A clock that only moves when the test says so."""

    def __init__(self, now_us: int = T0_US) -> None:
        self.t = now_us

    def now_us(self) -> int:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path / "catalog.db")
    yield cat
    cat.close()


@pytest.fixture
def users(catalog: Catalog, clock: StepClock) -> Users:
    return Users(catalog, clock)


# --- passwords -------------------------------------------------------------------------------


def test_password_hash_round_trip_and_wrong_password() -> None:
    encoded = hash_password(PASSWORD)
    assert check_password(PASSWORD, encoded)
    assert not check_password("correct horsE", encoded)
    assert not check_password("", encoded)
    assert not check_password(PASSWORD, "scrypt$garbage")
    assert not check_password(PASSWORD, encoded.replace("scrypt$16384", "scrypt$16383"))


def test_hash_is_self_describing_and_salted() -> None:
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    b64 = r"[A-Za-z0-9+/]+=*"
    assert re.fullmatch(rf"scrypt\$16384\$8\$1\${b64}\${b64}", a), a
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]  # different salts
    assert PASSWORD not in a


def test_verify(users: Users) -> None:
    alice = users.add("alice", PASSWORD, "operator")
    assert users.verify("alice", PASSWORD) == alice
    assert users.verify("Alice", PASSWORD) == alice  # names are case-insensitive
    assert users.verify("alice", "wrong password") is None
    assert users.verify("nobody", PASSWORD) is None
    users.disable("alice")
    assert users.verify("alice", PASSWORD) is None
    users.enable("alice")
    assert users.verify("alice", PASSWORD) is not None
    users.set_password("alice", "another password")
    assert users.verify("alice", PASSWORD) is None
    assert users.verify("alice", "another password") is not None


def test_unknown_user_costs_a_hash_too(users: Users) -> None:
    users.add("alice", PASSWORD, "viewer")
    users.verify("ghost", PASSWORD)  # warm the dummy hash

    def best_of_3(name: str) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            users.verify(name, "wrong password")
            times.append(time.perf_counter() - t)
        return min(times)

    known, unknown = best_of_3("alice"), best_of_3("ghost")
    assert unknown > known / 3, (known, unknown)


def test_account_rules(users: Users) -> None:
    with pytest.raises(UserError, match="password"):
        users.add("bob", "short", "viewer")
    with pytest.raises(UserError, match="role"):
        users.add("bob", PASSWORD, "superuser")
    with pytest.raises(UserError, match="name"):
        users.add("bob smith", PASSWORD, "viewer")
    with pytest.raises(UserError, match="camera"):
        users.add("bob", PASSWORD, "viewer", ["Front Door"])
    users.add("bob", PASSWORD, "viewer", ["cam-1"])
    with pytest.raises(UserError, match="exists"):
        users.add("BOB", PASSWORD, "admin")
    with pytest.raises(UserError, match="no user"):
        users.set_password("carol", PASSWORD)

    # the last enabled admin can be neither disabled nor demoted
    users.add("root", PASSWORD, "admin")
    with pytest.raises(UserError, match="last"):
        users.disable("root")
    with pytest.raises(UserError, match="last"):
        users.set_role("root", "viewer")
    promoted = users.set_role("bob", "admin")
    assert promoted.all_cameras and promoted.cameras == frozenset()
    with pytest.raises(UserError, match="admin sees every camera"):
        users.set_cameras("bob", ["cam-1"])
    assert users.set_role("root", "operator").role == Role.OPERATOR
    assert [(u.name, u.role) for u in users.list()] == [("bob", "admin"), ("root", "operator")]


# --- first admin -----------------------------------------------------------------------------


def test_first_admin_from_environment(users: Users) -> None:
    assert users.ensure_first_admin("from the environment") is None
    admin = users.verify("admin", "from the environment")
    assert admin is not None and admin.role == Role.ADMIN and admin.all_cameras
    assert users.ensure_first_admin("something else entirely") is None  # does nothing
    assert users.verify("admin", "from the environment") is not None
    assert len(users.list()) == 1


def test_first_admin_generated_once(users: Users) -> None:
    generated = users.ensure_first_admin(None)
    assert generated and len(generated) >= 16
    assert users.verify("admin", generated) is not None
    assert users.ensure_first_admin(None) is None
    assert users.ensure_first_admin("x") is None  # too short, but users exist: not even read
    assert len(users.list()) == 1


def test_first_admin_not_made_when_users_exist(users: Users) -> None:
    users.add("alice", PASSWORD, "viewer")
    assert users.ensure_first_admin(None) is None
    assert users.get("admin") is None


# --- tokens ----------------------------------------------------------------------------------


def test_tokens_issue_resolve_expire_revoke(
    users: Users, catalog: Catalog, clock: StepClock
) -> None:
    tokens = Tokens(catalog, clock, ttl_s=3600)
    alice = users.add("alice", PASSWORD, "viewer", ["cam-1"])
    token, expires_us = tokens.issue(alice)
    assert expires_us == clock.now_us() + 3600 * 1_000_000
    assert len(token) >= 43
    assert tokens.resolve(token) == alice
    assert tokens.resolve(token + "x") is None
    assert tokens.resolve("") is None
    # only the hash is stored
    stored = catalog._all("SELECT token_hash FROM tokens")
    assert len(stored) == 1 and stored[0][0] != token and len(stored[0][0]) == 64

    clock.advance(3599)
    assert tokens.resolve(token) == alice
    assert catalog._one("SELECT last_used_us FROM tokens") == (clock.now_us(),)
    clock.advance(1)
    assert tokens.resolve(token) is None  # expired
    assert tokens.purge_expired() == 1

    second, _ = tokens.issue(alice)
    third, _ = tokens.issue(alice)
    assert tokens.revoke(second)
    assert not tokens.revoke(second)
    assert tokens.resolve(second) is None
    assert tokens.resolve(third) == alice


def test_tokens_end_with_disabling_or_a_new_password(
    users: Users, catalog: Catalog, clock: StepClock
) -> None:
    tokens = Tokens(catalog, clock)
    users.add("root", PASSWORD, "admin")
    alice = users.add("alice", PASSWORD, "operator")
    token, _ = tokens.issue(alice)
    users.disable("alice")
    assert tokens.resolve(token) is None
    users.enable("alice")
    assert tokens.resolve(token) is None  # disabling ended the session for good

    alice = users.get("alice")
    assert alice is not None
    token, _ = tokens.issue(alice)
    users.set_password("alice", "a brand new one")
    assert tokens.resolve(token) is None

    token, _ = tokens.issue(alice)
    with catalog.transaction() as c:  # disabled behind the API's back: still refused
        c.execute("UPDATE users SET disabled = 1 WHERE name = 'alice'")
    assert tokens.resolve(token) is None
    with pytest.raises(ValueError, match="disabled"):
        tokens.issue(users.get("alice"))  # type: ignore[arg-type]


def test_token_sees_new_rights(users: Users, catalog: Catalog, clock: StepClock) -> None:
    tokens = Tokens(catalog, clock)
    token, _ = tokens.issue(users.add("alice", PASSWORD, "viewer", ["cam-1"]))
    users.set_cameras("alice", ["cam-2", "cam-3"])
    user = tokens.resolve(token)
    assert user is not None and user.cameras == {"cam-2", "cam-3"}


# --- rights ----------------------------------------------------------------------------------

EXPECTED = {
    # role:       live, archive, export, bookmarks, config, users, audit, ptz
    "admin": (1, 1, 1, 1, 1, 1, 1, 1),
    "operator": (1, 1, 1, 1, 0, 0, 0, 1),
    "viewer": (1, 1, 0, 0, 0, 0, 0, 0),
}
PERMS = ("live", "archive", "export", "bookmarks", "config", "users", "audit", "ptz")


@pytest.mark.parametrize("role", list(EXPECTED))
def test_role_permission_matrix(users: Users, role: str) -> None:
    everywhere = users.add(f"{role}-all", PASSWORD, role)
    assert {p.value for p in ROLE_PERMISSIONS[Role(role)]} == {
        p for p, ok in zip(PERMS, EXPECTED[role], strict=True) if ok
    }
    for perm, ok in zip(PERMS, EXPECTED[role], strict=True):
        assert allowed(everywhere, perm) is bool(ok), perm
        assert allowed(everywhere, Permission(perm), "cam-9") is bool(ok), perm


def test_per_camera_rights(users: Users) -> None:
    viewer = users.add("vic", PASSWORD, "viewer", ["cam-1", "cam-2"])
    operator = users.add("otto", PASSWORD, "operator", [])
    admin = users.add("ada", PASSWORD, "admin", ["cam-1"])  # an admin sees every camera anyway
    assert viewer.cameras == {"cam-1", "cam-2"} and not viewer.all_cameras
    assert can_see(viewer, "cam-1") and users.can_see(viewer, "cam-2")
    assert not can_see(viewer, "cam-3")
    assert allowed(viewer, "archive", "cam-1") and not allowed(viewer, "archive", "cam-3")
    assert not allowed(viewer, "export", "cam-1")
    assert not can_see(operator, "cam-1") and not allowed(operator, "export", "cam-1")
    assert allowed(operator, "export")  # not camera-scoped: the role alone decides
    assert admin.all_cameras and can_see(admin, "anything")
    assert users.visible(viewer, ["cam-3", "cam-2", "cam-1"]) == ["cam-2", "cam-1"]

    otto = users.set_cameras("otto", None)
    assert otto.all_cameras and allowed(otto, "export", "cam-7")
    users.disable("otto")
    otto = users.get("otto")
    assert otto is not None and otto.disabled
    assert not can_see(otto, "cam-7") and not allowed(otto, "live")
    with pytest.raises(ValueError):
        allowed(viewer, "exprot")


# --- rate limit ------------------------------------------------------------------------------


def test_rate_limit_backs_off_the_pair_and_spares_the_neighbours(clock: StepClock) -> None:
    """Issue 19: five failures for one name from one address make that pair wait 2 s, then
    4 s, 8 s ... (at most 60 s); the same address with another name, and the same name from
    another address, are not held off (the victim is not locked out)."""
    limiter = LoginRateLimiter(clock, max_failures=5, window_s=60)
    for _ in range(5):
        assert limiter.allowed("10.0.0.1", "alice")
        limiter.failure("10.0.0.1", "alice")
        clock.advance(1)
    assert limiter.retry_after_s("10.0.0.1", "alice") == pytest.approx(1)  # 2 s after the 5th
    assert limiter.allowed("10.0.0.1", "bob")  # same address, other name
    assert limiter.allowed("10.0.0.2", "ALICE")  # same name, other address
    clock.advance(1)
    assert limiter.allowed("10.0.0.1", "alice")
    waits = []
    for _ in range(6):
        limiter.failure("10.0.0.1", "alice")
        waits.append(limiter.retry_after_s("10.0.0.1", "alice"))
        clock.advance(waits[-1])
    assert waits == [4, 8, 16, 32, 60, 60]


def test_rate_limit_per_name_and_per_address_after_more_failures(clock: StepClock) -> None:
    limiter = LoginRateLimiter(clock, max_failures=5, window_s=60)
    for i in range(20):  # one name guessed from twenty machines
        limiter.failure(f"10.0.1.{i}", "alice")
    assert not limiter.allowed("10.0.9.9", "alice")
    assert limiter.allowed("10.0.9.9", "bob")
    for i in range(20):  # one machine guessing twenty names
        limiter.failure("10.0.2.1", f"user{i}")
    assert not limiter.allowed("10.0.2.1", "carol")
    assert limiter.allowed("10.0.2.2", "carol")
    clock.advance(900)  # counts are forgotten 15 min after a key's last failure
    assert limiter.allowed("10.0.2.1", "carol") and limiter.allowed("10.0.9.9", "alice")


def test_rate_limit_success_and_ipv6(clock: StepClock) -> None:
    limiter = LoginRateLimiter(clock, max_failures=5, window_s=60)
    for _ in range(5):
        limiter.failure("2001:db8::1", "alice")
    assert not limiter.allowed("2001:db8::9", "alice")  # one /64
    assert limiter.allowed("2001:db8:0:1::1", "alice")  # another /64
    limiter.success("2001:db8::9", "alice")  # clears the name's counts
    assert limiter.allowed("2001:db8::9", "alice")
    for _ in range(5):
        limiter.failure("::ffff:192.0.2.1", "erin")
    assert not limiter.allowed("192.0.2.1", "erin")


# --- audit -----------------------------------------------------------------------------------


def test_audit_record_and_query(users: Users, catalog: Catalog, clock: StepClock) -> None:
    audit = Audit(catalog, clock)
    alice = users.add("alice", PASSWORD, "operator")
    audit.record(None, "login-failed", "alice", {"reason": "password"}, "10.0.0.1")
    clock.advance(1)
    audit.record(alice, "login", remote="10.0.0.1")
    clock.advance(1)
    audit.record(alice, "export", "cam-1", {"start_us": 1, "end_us": 2, "path": Path("/x")})
    clock.advance(1)
    audit.record("", "config-change", "cam-2", {"enabled": False})

    entries = audit.query()
    assert [e.action for e in entries] == ["config-change", "export", "login", "login-failed"]
    export = entries[1]
    assert export.user == "alice" and export.target == "cam-1" and export.remote == ""
    assert export.detail == {"start_us": 1, "end_us": 2, "path": "/x"}
    assert entries[3].detail == {"reason": "password"} and entries[3].user == ""

    assert [e.action for e in audit.query(user="ALICE")] == ["export", "login"]
    assert [e.action for e in audit.query(action="login")] == ["login"]
    one_s = 1_000_000
    window = audit.query(since_us=T0_US + one_s, until_us=T0_US + 2 * one_s + 1)
    assert [e.action for e in window] == ["export", "login"]
    window = audit.query(since_us=T0_US + one_s, until_us=T0_US + 2 * one_s)
    assert [e.action for e in window] == ["login"]  # until is exclusive
    assert len(audit.query(limit=2)) == 2

    with pytest.raises(sqlite3.IntegrityError, match="append-only"), catalog.transaction() as c:
        c.execute("UPDATE audit_log SET user = 'mallory'")
    assert audit.purge(T0_US + 2_000_000) == 2
    assert len(audit.query()) == 2


# --- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO users (name, password_hash, role, created_us) VALUES ('x', 'scrypt$a$b',"
        " 'root', 1)",
        "INSERT INTO users (name, password_hash, role, created_us) VALUES ('a b', 'scrypt$a$b',"
        " 'viewer', 1)",
        "INSERT INTO users (name, password_hash, role, created_us) VALUES ('x', 'plain',"
        " 'viewer', 1)",
        "INSERT INTO users (name, password_hash, role, all_cameras, created_us) VALUES ('x',"
        " 'scrypt$a$b', 'admin', 0, 1)",
        "INSERT INTO users (name, password_hash, role, disabled, created_us) VALUES ('x',"
        " 'scrypt$a$b', 'viewer', 2, 1)",
        "INSERT INTO users (name, password_hash, role, created_us) VALUES ('ADA', 'scrypt$a$b',"
        " 'viewer', 1)",
        "INSERT INTO user_cameras (user_id, camera_id) VALUES (1, 'Cam 1')",
        "INSERT INTO user_cameras (user_id, camera_id) VALUES (99, 'cam-1')",
        f"INSERT INTO tokens (user_id, token_hash, created_us, expires_us) VALUES (1, '{'A' * 64}',"
        " 1, 2)",
        f"INSERT INTO tokens (user_id, token_hash, created_us, expires_us) VALUES (1, '{'a' * 64}',"
        " 2, 2)",
        "INSERT INTO audit_log (ts_us, action, detail) VALUES (1, 'login', 'not json')",
        "INSERT INTO audit_log (ts_us, action, detail) VALUES (1, 'login', '[1]')",
        "INSERT INTO audit_log (ts_us, action) VALUES (1, 'Log In')",
    ],
    ids=[
        "role",
        "name",
        "hash-format",
        "admin-all-cameras",
        "disabled-bool",
        "name-unique-nocase",
        "camera-slug",
        "user-fk",
        "token-hash-hex",
        "token-expiry",
        "detail-json",
        "detail-object",
        "action-slug",
    ],
)
def test_schema_refuses_bad_auth_rows(users: Users, catalog: Catalog, sql: str) -> None:
    users.add("ada", PASSWORD, "admin")
    with pytest.raises(sqlite3.IntegrityError), catalog.transaction() as c:
        c.execute(sql)


def test_upgrades_a_version_1_catalog(tmp_path: Path, clock: StepClock) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO cameras (id, name, created_us, updated_us) VALUES ('c', 'C', 1, 1)")
    conn.commit()
    conn.close()
    cat = Catalog(path)
    try:
        assert cat._one("PRAGMA user_version") == (SCHEMA_VERSION,)
        assert [c.id for c in cat.cameras()] == ["c"]
        assert Users(cat, clock).ensure_first_admin("upgraded install") is None
    finally:
        cat.close()


def test_old_hash_parameters_are_upgraded_at_login(users: Users, catalog: Catalog) -> None:
    users.add("alice", PASSWORD, "viewer")
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)
    old = "$".join(
        (
            "scrypt",
            "4096",
            "8",
            "1",
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )
    with catalog.transaction() as c:
        c.execute("UPDATE users SET password_hash = ? WHERE name = 'alice'", (old,))
    assert users.verify("alice", PASSWORD) is not None
    (new,) = catalog._one("SELECT password_hash FROM users WHERE name = 'alice'")  # type: ignore[misc]
    assert new.startswith("scrypt$16384$8$1$") and check_password(PASSWORD, new)
