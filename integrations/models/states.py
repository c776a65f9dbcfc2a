"""Declared state machines: which status changes a model allows, and the one way to make them.

Each stateful model declares its transitions next to itself (`Event.STATES`, `Job.STATES`, the
triage machine), and every status change goes through `StateMachine.move`: a conditional UPDATE
whose WHERE clause names the states the change may start from. A change that is not declared
raises `InvalidTransition` before touching the database (a programming error); a change whose row
is no longer in an expected state updates nothing and returns 0, so a lost race is visible to the
caller instead of silently overwriting the winner.
"""

from collections.abc import Iterable, Mapping

from django.db import models


class InvalidTransition(ValueError):
    """A status change the state machine does not declare."""


class StateMachine:
    """Transitions of one status field: `{from_state: {to_state, ...}}`."""

    def __init__(self, field: str, transitions: Mapping[str, Iterable[str]]) -> None:
        self.field = field
        self.transitions = {source: frozenset(targets) for source, targets in transitions.items()}
        self.states = frozenset(self.transitions) | {t for targets in self.transitions.values() for t in targets}

    def allows(self, source: str, target: str) -> bool:
        return target in self.transitions.get(source, ())

    def check(self, sources: Iterable[str], target: str) -> tuple[str, ...]:
        """The sources as a tuple, if every one of them may move to `target`; else raise."""
        sources = tuple(sources)
        if not sources:
            raise InvalidTransition(f"{self.field}: no state to move to {target!r} from")
        refused = [source for source in sources if not self.allows(source, target)]
        if refused:
            raise InvalidTransition(f"{self.field}: {', '.join(refused)} -> {target} is not a declared transition")
        return sources

    def sources_of(self, target: str) -> tuple[str, ...]:
        """Every state that may move to `target`."""
        return tuple(sorted(source for source, targets in self.transitions.items() if target in targets))

    def move(self, queryset: models.QuerySet, *, source: str | Iterable[str], target: str, **changes) -> int:
        """Move the rows of `queryset` that are in `source` (one state or several) to `target`,
        setting `changes` in the same UPDATE. Returns how many rows moved."""
        sources = self.check((source,) if isinstance(source, str) else source, target)
        return queryset.filter(**{f"{self.field}__in": sources}).update(**{self.field: target}, **changes)

    def move_each(self, model: type[models.Model], rows: list[tuple], *, where: dict | None = None) -> int:
        """Move many rows, each to its own target with its own values, in one executemany:
        `rows` are (pk, source, target, {field: value}) with the same fields in every row. Each row
        is its own conditional UPDATE (`pk` and `source`, plus `where`). Returns the rows moved."""
        if not rows:
            return 0
        from django.db import connection

        for _pk, source, target, _changes in rows:
            self.check((source,), target)
        names = list(rows[0][3])
        where = where or {}
        meta = model._meta
        quote = connection.ops.quote_name
        fields = [meta.get_field(name) for name in names]
        where_fields = [meta.get_field(name) for name in where]
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {quote(meta.get_field(self.field).column)} = %s"  # noqa: S608
            + "".join(f", {quote(f.column)} = %s" for f in fields)
            + f" WHERE {quote(meta.pk.column)} = %s AND {quote(meta.get_field(self.field).column)} = %s"
            + "".join(f" AND {quote(f.column)} = %s" for f in where_fields)
        )
        fixed = [f.get_db_prep_save(where[f.name], connection) for f in where_fields]
        params = [
            [target, *(f.get_db_prep_save(changes[f.name], connection) for f in fields), pk, source, *fixed]
            for pk, source, target, changes in rows
        ]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
            return cursor.rowcount

    def check_constraint(self, name: str) -> models.CheckConstraint:
        """The database refuses a status outside the machine."""
        return models.CheckConstraint(condition=models.Q(**{f"{self.field}__in": sorted(self.states)}), name=name)
