"""Replay: running an event's jobs again, safely.

- `selection`: what a replay covers (one webhook, a list, a filter), resolved to events.
- `planner`: the dry run, each job's declared decision (`integrations.jobs.registry`) evaluated
  on the state now, and the plan's hash.
- `services`: check (dry run), do (run exactly the plan shown), approve, cancel, link to an incident.
- `runner`: the pumps' replay lane: items run only when the live queue is drained, each job
  re-checked just before it runs.
- `refetch`: reading a record from Shopify first, for stale payloads.
- `switches`: containment, disabling a handler per shop or for all shops (its jobs are held).
- `runbook`: the runbook page's content, generated from the registry.
"""
