"""Event log: what support reads and does about inbound events.

Owns the filters, selectors, CSV export, saved views, the five-question trace, the dashboard's
event health, triage, and their views and urls. Reads what `inbound` and `processing` wrote;
changes only triage state (and, through named services, an event's status by hand).
"""
