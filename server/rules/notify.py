"""Webhooks and e-mail: deliveries with time-outs and retries that never hold up other actions.

A webhook is a JSON POST signed with HMAC-SHA256 over the exact body bytes
(``X-Vigia-Signature: sha256=<hex>``), retried with backoff and jitter
(``server.protocol.backoff``); after the last try the delivery is listed as failed.
E-mail goes through ``aiosmtplib``, with STARTTLS whenever the server offers it.
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


async def send_email(
    smtp: SmtpConfig, to: list[str], subject: str, text: str, snapshot: Path | None
) -> Outcome:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, ", ".join(to), subject
    msg.set_content(text)
    if snapshot is not None:
        try:
            data = await asyncio.to_thread(snapshot.read_bytes)
            msg.add_attachment(data, maintype="image", subtype="jpeg", filename=snapshot.name)
        except OSError as exc:
            log.warning("e-mail without its snapshot %s: %s", snapshot, exc)
    try:
        await aiosmtplib.send(
            msg,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username or None,
            password=smtp.password or None,
            start_tls=None,  # STARTTLS when the server offers it
            cert_bundle=smtp.ca_file or None,
            timeout=smtp.timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Outcome(False, 1, f"{type(exc).__name__}: {exc}")
    return Outcome(True, 1)
