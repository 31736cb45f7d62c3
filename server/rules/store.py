"""Rules, arming, alarms and failed deliveries in the catalog (migration ``RULES_MIGRATION``)."""

from __future__ import annotations

import json

import msgspec

from server.catalog import Catalog
from server.protocol.models.rules import Alarm, Arming, Delivery, Rule, RuleInput

_ALARM = (
    "id, rule_id, rule, camera_id, priority, state, ts_us, trig, event, snapshot, updated_us,"
    " by, comment"
)


def _alarm(row: tuple) -> Alarm:
    (aid, rule_id, rule, camera, prio, state, ts, trig, event, snap, upd, by, comment) = row
    return Alarm(aid, rule_id, rule, camera, prio, state, ts, trig, json.loads(event), snap, upd,
                 by, comment)  # fmt: skip


class RulesStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # --- rules ----------------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        rows = self.catalog._all("SELECT id, rule, updated_us FROM rules ORDER BY id")
        return [self._rule(*r) for r in rows]

    def rule(self, rule_id: int) -> Rule | None:
        row = self.catalog._one("SELECT id, rule, updated_us FROM rules WHERE id = ?", (rule_id,))
        return self._rule(*row) if row else None

    @staticmethod
    def _rule(rule_id: int, text: str, updated_us: int) -> Rule:
        body = msgspec.json.decode(text)
        return msgspec.convert({**body, "id": rule_id, "updated_us": updated_us}, Rule)

    def add_rule(self, rule: RuleInput, now_us: int) -> int:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT INTO rules (name, rule, updated_us) VALUES (?, ?, ?)",
                (rule.name, msgspec.json.encode(rule).decode(), now_us),
            )
            return int(cur.lastrowid)

    def put_rule(self, rule_id: int, rule: RuleInput, now_us: int) -> bool:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "UPDATE rules SET name = ?, rule = ?, updated_us = ? WHERE id = ?",
                (rule.name, msgspec.json.encode(rule).decode(), now_us, rule_id),
            )
            return cur.rowcount > 0

    def delete_rule(self, rule_id: int) -> bool:
        with self.catalog.transaction() as c:
            return c.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount > 0

    # --- arming ---------------------------------------------------------------------------

    def arming(self) -> dict[str, Arming]:
        rows = self.catalog._all("SELECT grp, armed, updated_us, updated_by FROM arming")
        return {g: Arming(g, bool(a), u, b) for g, a, u, b in rows}

    def set_armed(self, group: str, armed: bool, now_us: int, by: str) -> Arming:
        with self.catalog.transaction() as c:
            c.execute(
                "INSERT INTO arming (grp, armed, updated_us, updated_by) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (grp) DO UPDATE SET armed = excluded.armed,"
                " updated_us = excluded.updated_us, updated_by = excluded.updated_by",
                (group, int(armed), now_us, by),
            )
        return Arming(group, armed, now_us, by)

    # --- alarms ---------------------------------------------------------------------------

    def add_alarm(self, alarm: Alarm) -> Alarm:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT INTO alarms (rule_id, rule, camera_id, priority, state, ts_us, trig,"
                " event, snapshot, updated_us, by, comment) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (alarm.rule_id, alarm.rule, alarm.camera, alarm.priority, alarm.state,
                 alarm.ts_us, alarm.trigger, json.dumps(alarm.event), alarm.snapshot,
                 alarm.updated_us, alarm.by, alarm.comment),
            )  # fmt: skip
        return msgspec.structs.replace(alarm, id=int(cur.lastrowid))

    def alarm(self, alarm_id: int) -> Alarm | None:
        row = self.catalog._one(f"SELECT {_ALARM} FROM alarms WHERE id = ?", (alarm_id,))
        return _alarm(row) if row else None

    def alarms(self, states: tuple[str, ...] = (), limit: int = 500) -> list[Alarm]:
        """Most urgent first, then newest."""
        sql = f"SELECT {_ALARM} FROM alarms"
        params: list[object] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params += states
        sql += " ORDER BY priority, ts_us DESC LIMIT ?"
        return [_alarm(r) for r in self.catalog._all(sql, [*params, limit])]

    def set_state(self, alarm_id: int, state: str, by: str, comment: str, now_us: int) -> bool:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "UPDATE alarms SET state = ?, by = ?, comment = ?, updated_us = ? WHERE id = ?",
                (state, by, comment, now_us, alarm_id),
            )
            return cur.rowcount > 0

    # --- failed deliveries ----------------------------------------------------------------

    def add_failed(self, d: Delivery) -> int:
        with self.catalog.transaction() as c:
            cur = c.execute(
                "INSERT INTO failed_deliveries (rule_id, alarm_id, kind, target, attempts,"
                " error, ts_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (d.rule_id, d.alarm_id, d.kind, d.target, d.attempts, d.error, d.ts_us),
            )
            return int(cur.lastrowid)

    def failed(self, limit: int = 500) -> list[Delivery]:
        rows = self.catalog._all(
            "SELECT id, rule_id, alarm_id, kind, target, attempts, error, ts_us"
            " FROM failed_deliveries ORDER BY ts_us DESC LIMIT ?",
            (limit,),
        )
        return [Delivery(*r) for r in rows]
