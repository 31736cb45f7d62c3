"""HTTP client of one recorder's ``/api/v1`` (aiohttp, on the ``AsyncRunner`` loop).

Thin on purpose: it knows the wire contract's conventions (bearer token, JSON errors as
``{"error": {"code", "message"}}``, HTTP Range for media) and nothing of sessions or models.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

API = "/api/v1"


class ApiError(Exception):
    """A refused or failed request; ``status`` 0 means the recorder could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class NatsAccess:
    url: str
    user: str
    password: str


@dataclass(frozen=True)
class Login:
    token: str
    expires_us: int
    user: str
    role: str
    nats: NatsAccess | None


def _nats_access(data: Any, base_url: str) -> NatsAccess | None:
    if not isinstance(data, dict):
        return None
    url = str(data.get("url") or "")
    api_host = URL(base_url).host or "127.0.0.1"
    if data.get("port") and (not url or URL(url).host in ("0.0.0.0", "::", "")):
        # a NATS server listening on every interface is reached where the API was
        url = f"nats://{api_host}:{int(data['port'])}"
    return NatsAccess(url, str(data.get("user", "")), str(data.get("password", "")))


class ApiClient:
    """One recorder at ``base_url`` (e.g. ``http://127.0.0.1:8480``). Create it on the loop."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 3.0))
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # one connection pool per recorder; keep-alive matters for range fetches
            connector = aiohttp.TCPConnector(limit=16, ttl_dns_cache=300)
            self._http = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._http

    def url(self, path: str) -> str:
        return f"{self.base_url}{API}{path}" if not path.startswith("/api/") else path

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if extra:
            headers.update(extra)
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        url = self.url(path) if path.startswith("/") else path
        if url.startswith("/api/"):
            url = f"{self.base_url}{url}"
        clean = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session().request(
                method, url, params=clean, json=json, headers=self._headers(headers)
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise _error(resp.status, body)
                return resp.status, body, dict(resp.headers)
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from exc
        except TimeoutError as exc:
            raise ApiError(0, "timeout", f"{self.base_url}: no answer in time") from exc

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return _json((await self.request("GET", path, params=params))[1])

    async def post_json(self, path: str, body: Any = None) -> Any:
        return _json((await self.request("POST", path, json=body if body is not None else {}))[1])

    async def patch_json(self, path: str, body: Any) -> Any:
        return _json((await self.request("PATCH", path, json=body))[1])

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def get_bytes(
        self, path: str, byte_range: tuple[int, int] | None = None, params: dict | None = None
    ) -> bytes:
        """``byte_range`` is (first, end) with ``end`` exclusive, as Python slices."""
        headers = None
        if byte_range is not None:
            first, end = byte_range
            headers = {"Range": f"bytes={first}-{end - 1}"}
        status, body, _ = await self.request("GET", path, params=params, headers=headers)
        if byte_range is not None and status != 206:
            body = body[byte_range[0] : byte_range[1]]  # a server that ignores Range
        return body

    async def download(self, path: str, dest: Path, chunk: int = 1 << 20) -> int:
        """Stream a (large) body into ``dest``; returns its size."""
        tmp = dest.with_name(dest.name + ".part")
        size = 0
        try:
            async with self._session().get(self.url(path), headers=self._headers()) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.read())
                with tmp.open("wb") as out:
                    async for block in resp.content.iter_chunked(chunk):
                        out.write(block)
                        size += len(block)
        except aiohttp.ClientError as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from exc
        tmp.replace(dest)
        return size

    async def login(self, user: str, password: str) -> Login:
        data = await self.post_json("/auth/login", {"name": user, "password": password})
        self.token = data["token"]
        return Login(
            token=data["token"],
            expires_us=int(data["expires_us"]),
            user=str(data["user"]),
            role=str(data["role"]),
            nats=_nats_access(data.get("nats"), self.base_url),
        )

    async def logout(self) -> None:
        if self.token:
            try:
                await self.request("POST", "/auth/logout")
            finally:
                self.token = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


def _json(body: bytes) -> Any:
    return json.loads(body) if body else None


def _error(status: int, body: bytes) -> ApiError:
    try:
        err = _json(body)["error"]
        return ApiError(status, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(status, "http_error", body[:200].decode("utf-8", "replace"))
