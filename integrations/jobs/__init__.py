"""Jobs: what each webhook topic makes the platform do.

Owns the registry (topic -> jobs, each with its replay decision), one declared field map per
Shopify resource (used by sync, personal-data scrubbing and export alike), the sync jobs, the
privacy jobs and the app lifecycle job.
"""
