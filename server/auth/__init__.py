"""Users and security (docs/design/auth.md): accounts, rights, API tokens, login limit, audit log.

Storage is the catalog (schema version 2); nothing here knows HTTP, so the API, the command
line (``vigia-server user add|passwd``) and the NATS credential issuer share the same rules.
"""

from server.auth.audit import Audit, AuditEntry
from server.auth.ratelimit import LoginRateLimiter
from server.auth.tokens import Tokens
from server.auth.users import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    User,
    UserError,
    Users,
    allowed,
    can_see,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "Audit",
    "AuditEntry",
    "LoginRateLimiter",
    "Permission",
    "Role",
    "Tokens",
    "User",
    "UserError",
    "Users",
    "allowed",
    "can_see",
]
