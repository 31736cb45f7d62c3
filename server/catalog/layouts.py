"""Named wall layouts, per user or shared, so a workstation user finds theirs on any desk."""

from __future__ import annotations

import json
from dataclasses import dataclass

from server.catalog.catalog import Catalog


@dataclass(frozen=True)
class LayoutRow:
    owner: str
    name: str
    shared: bool
    layout: dict
    updated_us: int

    def to_json(self) -> dict:
        return {
            "owner": self.owner,
            "name": self.name,
            "shared": self.shared,
            "layout": self.layout,
            "updated_us": self.updated_us,
        }


class Layouts:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def visible(self, user: str) -> list[LayoutRow]:
        """The user's own layouts and everybody's shared ones."""
        rows = self.catalog._all(
            "SELECT owner, name, shared, layout, updated_us FROM layouts"
            " WHERE owner = ? OR shared = 1 ORDER BY name, owner",
            (user,),
        )
        return [LayoutRow(o, n, bool(s), json.loads(lay), u) for o, n, s, lay, u in rows]

    def get(self, owner: str, name: str) -> LayoutRow | None:
        rows = self.catalog._all(
            "SELECT owner, name, shared, layout, updated_us FROM layouts"
            " WHERE owner = ? AND name = ?",
            (owner, name),
        )
        if not rows:
            return None
        o, n, shared, layout, updated = rows[0]
        return LayoutRow(o, n, bool(shared), json.loads(layout), updated)

    def put(self, row: LayoutRow) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO layouts (owner, name, shared, layout, updated_us)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, name) DO UPDATE SET"
                " shared = excluded.shared, layout = excluded.layout,"
                " updated_us = excluded.updated_us",
                (row.owner, row.name, int(row.shared), json.dumps(row.layout), row.updated_us),
            )

    def delete(self, owner: str, name: str) -> bool:
        with self.catalog.transaction() as c:
            cur = c.execute("DELETE FROM layouts WHERE owner = ? AND name = ?", (owner, name))
            return cur.rowcount > 0
