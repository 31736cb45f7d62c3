"""The ONVIF device each camera was added from (address, credentials, chosen profiles)."""

from __future__ import annotations

from dataclasses import dataclass

from server.catalog.catalog import Catalog


@dataclass(frozen=True, slots=True)
class OnvifRow:
    camera_id: str
    address: str
    username: str
    password: str
    main_profile: str
    sub_profile: str | None


class CameraOnvif:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def get(self, camera_id: str) -> OnvifRow | None:
        row = self.catalog._one(
            "SELECT camera_id, address, username, password, main_profile, sub_profile"
            " FROM camera_onvif WHERE camera_id = ?",
            (camera_id,),
        )
        return OnvifRow(*row) if row else None

    def enabled_rows(self) -> list[OnvifRow]:
        """The devices of enabled cameras (each gets an events subscription)."""
        rows = self.catalog._all(
            "SELECT o.camera_id, o.address, o.username, o.password, o.main_profile,"
            " o.sub_profile FROM camera_onvif o JOIN cameras c ON c.id = o.camera_id"
            " WHERE c.enabled = 1 ORDER BY o.camera_id"
        )
        return [OnvifRow(*r) for r in rows]

    def addresses(self) -> dict[str, str]:
        """camera id -> device address, for every camera added from a device."""
        return dict(self.catalog._all("SELECT camera_id, address FROM camera_onvif"))

    def put(self, row: OnvifRow, *, now_us: int) -> None:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO camera_onvif (camera_id, address, username, password, main_profile,"
                " sub_profile, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (camera_id) DO UPDATE SET address = excluded.address,"
                " username = excluded.username, password = excluded.password,"
                " main_profile = excluded.main_profile, sub_profile = excluded.sub_profile,"
                " updated_us = excluded.updated_us",
                (row.camera_id, row.address, row.username, row.password, row.main_profile,
                 row.sub_profile, now_us),
            )  # fmt: skip
