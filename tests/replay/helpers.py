"""Shared helpers of the replay tests."""

from integrations.jobs import registry


def failing(monkeypatch, name: str, message: str = "downstream is down"):
    """Make job `name` raise (not retryable) until the returned undo is called."""
    real = registry.JOB_TYPES[name]

    def broken(event, payload):
        raise ValueError(message)

    monkeypatch.setitem(registry.JOB_TYPES, name, real.__class__(**{**real.__dict__, "run": broken}))
    return lambda: monkeypatch.setitem(registry.JOB_TYPES, name, real)
