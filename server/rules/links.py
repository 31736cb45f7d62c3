"""Short-lived signed links to an alarm's snapshot and clip, for webhook receivers and e-mail
readers that hold no Vigia login (docs/design/rules.md).

A link is ``<path>?exp=<unix seconds>&sig=<hex>`` where ``sig`` is HMAC-SHA256, under a key
only the recorder knows, over ``<path>\\n<exp>``: the path names the alarm and what of it, so a
signature fits one resource and one expiry, and a link handed out cannot be widened or
prolonged. The key lives in the data dir (``keys/links.key``, owner-only), so links survive a
restart; deleting it revokes every link handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path

from server.protocol.files import create_private
from server.protocol.timeutil import US_PER_SECOND

log = logging.getLogger(__name__)

KEY_PATH = Path("keys") / "links.key"
KEY_BYTES = 32
DEFAULT_TTL_S = 3600.0


def load_or_create_key(root: Path) -> bytes:
    """The recorder's link key, made on first use."""
    path = root / KEY_PATH
    try:
        key = path.read_bytes()
        if len(key) >= KEY_BYTES:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if create_private(path, secrets.token_bytes(KEY_BYTES)):
        log.info("created the signed-link key %s", path)
    return path.read_bytes()


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sig(self, path: str, exp: int) -> str:
        return hmac.new(self._key, f"{path}\n{exp}".encode(), hashlib.sha256).hexdigest()

    def sign(self, path: str, now_us: int, ttl_s: float = DEFAULT_TTL_S) -> str:
        """``path`` with its expiry and signature as the query."""
        exp = int(now_us // US_PER_SECOND + ttl_s)
        return f"{path}?exp={exp}&sig={self._sig(path, exp)}"

    def check(self, path: str, exp: str, sig: str, now_us: int) -> str | None:
        """None when the link is good; otherwise why not (the route answers 403)."""
        try:
            when = int(exp)
        except ValueError:
            return "bad expiry"
        if not hmac.compare_digest(self._sig(path, when).encode(), sig.encode()):
            return "bad signature"
        if now_us // US_PER_SECOND >= when:
            return "link expired"
        return None
