"""A recorder's users, administered: list, add (optionally disabled), edit.

The settings dialog binds to this model; every call is a Future on the network loop (see
``app.remote``).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from app.api import ApiClient
from app.remote import RemoteModel


def _path(name: str) -> str:
    return f"/users/{name}"


def user_changes(
    user: dict[str, Any], role: str, cameras: list[str], disabled: bool, password: str = ""
) -> dict[str, Any]:
    """The ``PATCH /users/{name}`` body: the fields of the form that differ from ``user`` as
    the recorder listed it, and a new password when one was typed."""
    body: dict[str, Any] = {}
    if role != user.get("role"):
        body["role"] = role
    if cameras != user.get("cameras"):
        body["cameras"] = cameras
    if disabled != bool(user.get("disabled")):
        body["disabled"] = disabled
    if password:
        body["password"] = password
    return body


class UsersAdmin(RemoteModel):
    """The users of one logged-in recorder (an admin's session)."""

    def list(self) -> concurrent.futures.Future[list[dict[str, Any]]]:
        return self._call(lambda api: api.get_json("/users"))

    def add(
        self,
        name: str,
        password: str,
        role: str,
        cameras: list[str],
        *,
        disabled: bool = False,
    ) -> concurrent.futures.Future[dict[str, Any]]:
        """``POST /users``; a user created disabled is disabled right after (one more PATCH)."""
        body = {"name": name, "password": password, "role": role, "cameras": cameras}

        async def work(api: ApiClient) -> dict[str, Any]:
            user = await api.post_json("/users", body)
            if disabled:
                user = await api.patch_json(_path(name), {"disabled": True})
            return user

        return self._call(work)

    def edit(self, name: str, body: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """``PATCH /users/{name}`` with the fields that change (role, cameras, disabled,
        password)."""
        return self._call(lambda api: api.patch_json(_path(name), body))
