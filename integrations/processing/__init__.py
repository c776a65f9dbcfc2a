"""Processing: turning stored Events into finished Jobs on the worker.

Owns claiming events (disjoint batches, any number of pumps), running each event's jobs and
settling its status through the declared transitions, retries with backoff, and recovering the
claims of a pump that died. What a job does is `jobs`; this package only runs them.
"""
