"""Shops: registration, credentials (always masked), settings and lifecycle, with their pages.

Every change to a shop goes through `services`, which audits it in the same transaction.
"""
