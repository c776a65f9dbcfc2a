"""A local Shopify store simulator for trying the console without a real store.

Runs as its own process (`manage.py shopify_simulator`) and speaks HTTP like Shopify's Admin API:
`http://HOST:PORT/<shop-domain>/admin/api/<version>/graphql.json` and a REST subset, with Shopify's
rate limits, error bodies, scopes, API-version fall-forward and idempotency rules. It sends signed
webhooks with Shopify's headers and retry schedule, and exposes a control interface under
`/_simulator/` for tests and demos (faults, token revocation, edits behind the console's back).

Plain Python on purpose: it never imports the console's models or touches its database. All state
lives in memory; restarting the process or `POST /_simulator/reset` resets it.
"""
