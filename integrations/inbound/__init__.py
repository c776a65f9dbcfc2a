"""Inbound: the webhook receiver (`views`) and the storage plans behind it (`storage`).

Owns everything between Shopify's HTTP request and a committed Delivery and Event. It verifies,
records and answers; it never parses a payload or runs a job (that is `processing`).
"""
