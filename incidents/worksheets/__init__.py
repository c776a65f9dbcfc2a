"""Reconciliation worksheets (coming, issue 13): a controlled list of records, compared field by
field, approved by a second admin, applied with a stale guard. Empty until then."""
