"""The site's shared secret, and what is derived from it.

Every recorder of a site holds the same secret (``VIGIA_SITE_SECRET`` or ``[site] secret_file``).
The embedded nats-servers authenticate their route connections with credentials derived from it,
so a recorder without the secret cannot join the cluster, and the secret itself never goes into
a configuration file or onto the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from server.config import Config, ConfigError

SECRET_ENV = "VIGIA_SITE_SECRET"
ROUTE_USER = "vigia-route"
MIN_SECRET_LEN = 16


@dataclass(frozen=True, slots=True)
class RouteCredentials:
    user: str
    password: str = field(repr=False)


def wants_cluster(config: Config) -> bool:
    nats = config.nats
    return bool(nats.cluster_listen or nats.routes) and not nats.url


def load_secret(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The site's secret, or None when this recorder joins no cluster; ConfigError (exit 2)
    when a cluster is configured without a usable secret, saying what to do."""
    if not wants_cluster(config):
        return None
    env = os.environ if env is None else env
    if not config.site.name:
        raise ConfigError(
            "[nats] cluster_listen/routes need [site] name: recorders with the same site name "
            "and secret form one site"
        )
    if config.site.secret_file:
        path = Path(config.site.secret_file).expanduser()
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"[site] secret_file: cannot read {path}: {exc.strerror or exc}"
            ) from None
        where = f"[site] secret_file {path}"
    else:
        secret = env.get(SECRET_ENV, "").strip()
        where = SECRET_ENV
    if not secret:
        raise ConfigError(
            f"[site] {config.site.name}: joining a cluster needs the site's secret, the same on "
            f"every recorder: set {SECRET_ENV} or [site] secret_file"
        )
    if len(secret) < MIN_SECRET_LEN:
        raise ConfigError(
            f"{where}: the site's secret must have {MIN_SECRET_LEN} characters or more"
        )
    return secret


def derive(secret: str, purpose: str) -> str:
    """A key for one purpose: knowing one derived key tells nothing of the secret or the others."""
    return hmac.new(secret.encode(), f"vigia site {purpose}".encode(), hashlib.sha256).hexdigest()


def route_credentials(secret: str) -> RouteCredentials:
    return RouteCredentials(ROUTE_USER, derive(secret, "nats routes"))
