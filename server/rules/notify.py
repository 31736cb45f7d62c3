"""Webhooks and e-mail: deliveries with time-outs and retries that never hold up other actions.

A webhook is a JSON POST signed with HMAC-SHA256 over the exact body bytes
(``X-Vigia-Signature: sha256=<hex>``), retried with backoff and jitter
(``server.protocol.backoff``); after the last try the delivery is listed as failed.
E-mail goes through ``aiosmtplib``, with STARTTLS whenever the server offers it, over one kept
connection (``Mailer``): a busy site's alarms do not each pay a TCP and TLS handshake, and a
connection the server dropped meanwhile is made again once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib

from server.config import SmtpConfig
from server.protocol.backoff import Backoff

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Vigia-Signature"
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0


def signature(secret: str, body: bytes) -> str:
    """The header's value: receivers compute the same over the body they got."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Outcome:
    ok: bool
    attempts: int
    error: str = ""


async def post_webhook(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    secret: str,
    timeout_s: float,
    retries: int,
    backoff: Backoff | None = None,
) -> Outcome:
    """POST until a 2xx answer or ``retries`` retries have failed."""
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    backoff = backoff or Backoff(RETRY_INITIAL_S, RETRY_MAX_S)
    error = ""
    for attempt in range(1, retries + 2):
        try:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    return Outcome(True, attempt)
                error = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if attempt <= retries:
            delay = backoff.next()
            log.info("webhook %s failed (%s); try %d in %.1f s", url, error, attempt + 1, delay)
            await asyncio.sleep(delay)
    return Outcome(False, retries + 1, error)


def _message(
    smtp: SmtpConfig, to: list[str], subject: str, text: str, snapshot: bytes | None, name: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), subject
    msg.set_content(text)
    if snapshot is not None:
        msg.add_attachment(snapshot, maintype="image", subtype="jpeg", filename=name)
    return msg


class Mailer:
    """One kept SMTP connection; messages go one after another over it."""

    def __init__(self, smtp: SmtpConfig) -> None:
        self.smtp = smtp
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self.connections = 0  # made so far (tests and the benchmark read it)

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self.smtp
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, username=s.username or None,
            password=s.password or None, start_tls=None,  # STARTTLS when the server offers it
            cert_bundle=s.ca_file or None, timeout=s.timeout_s,
        )  # fmt: skip
        await client.connect()
        self._client = client
        self.connections += 1
        return client

    async def send(self, to: list[str], subject: str, text: str, snapshot: Path | None) -> Outcome:
        data = None
        if snapshot is not None:
            try:
                data = await asyncio.to_thread(snapshot.read_bytes)
            except OSError as exc:
                log.warning("e-mail without its snapshot %s: %s", snapshot, exc)
        name = snapshot.name if snapshot is not None else ""
        msg = _message(self.smtp, to, subject, text, data, name)
        async with self._lock:
            for attempt in (1, 2):
                try:
                    client = await self._connected()
                    await client.send_message(msg)
                    return Outcome(True, attempt)
                except aiosmtplib.SMTPServerDisconnected as exc:
                    await self._drop()
                    if attempt == 2:  # the kept connection had gone; a fresh one failed too
                        return Outcome(False, attempt, f"{type(exc).__name__}: {exc}")
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    await self._drop()
                    return Outcome(False, attempt, f"{type(exc).__name__}: {exc}")
        return Outcome(False, 2, "unreachable")  # pragma: no cover (the loop returns)

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), 2)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


async def send_email(
    smtp: SmtpConfig, to: list[str], subject: str, text: str, snapshot: Path | None
) -> Outcome:
    """One message over a connection of its own."""
    mailer = Mailer(smtp)
    try:
        return await mailer.send(to, subject, text, snapshot)
    finally:
        await mailer.close()
