"""Outbound (coming, issue 10): the one Admin API client, OutboundCall and its attempts, the
per-shop throttle, priority lanes, pause and drain, echo detection. Empty until then."""
