"""What a log line is about: the request, shop, webhook, event, job, outbound call or replay.

Code paths bind the ids they work on for the span of the work (`with bind(event_id=…, job=…)`);
`ContextFilter`, on the log handler, copies them onto every record logged meanwhile, so the JSON
formatter (LOG_FORMAT=json) writes them as fields and the text formatter appends them. A field the
log call passes itself (`extra=`) wins over the bound one.

The context lives in a contextvar: each thread (and asyncio task) has its own, so a sender thread
never tags a pump thread's lines. `bind` restores what was there before on the way out; `add` puts
ids learnt mid-span (the event id once a webhook is stored) into the innermost bound span, and does
nothing outside one (so it can never leak into the next request on a thread).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("request_id", "shop", "webhook_id", "event_id", "job", "outbound_call_id", "replay_id")

_context: ContextVar[dict | None] = ContextVar("log_context", default=None)


def _present(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if value is not None and value != ""}


@contextmanager
def bind(**fields) -> Iterator[dict]:
    """Tag every line logged in the block with `fields` (None and "" are left out)."""
    token = _context.set({**(_context.get() or {}), **_present(fields)})
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def add(**fields) -> None:
    """Add fields to the innermost `bind` block (a no-op outside one)."""
    scope = _context.get()
    if scope is not None:
        scope.update(_present(fields))


def current() -> dict:
    """The fields bound now (a copy)."""
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record, never over one the call passed in `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _context.get()
        if scope:
            for name, value in scope.items():
                if name not in record.__dict__:
                    setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The human-readable format, with the bound ids appended in brackets: `… [shop=a event_id=7]`."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{name}={record.__dict__[name]}" for name in FIELDS if record.__dict__.get(name) is not None]
        if not tags:
            return text
        # After the message's first line, so a traceback stays below it.
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(tags)}]{newline}{rest}"
