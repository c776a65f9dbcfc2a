"""Handing out a data-request export: admins only, audited, so who took personal data is known."""

import json

from django.core.exceptions import PermissionDenied

from console.audit import record_action
from integrations.models import PrivacyRequest

EXPORT_PERMISSION = "integrations.export_privacy_data"


def download_export(*, request_record: PrivacyRequest, by, http_request=None) -> bytes:
    """The export as JSON bytes, audited. Refused without the permission, or when there is none
    (not a data request, not done yet, or cleared by a later redaction)."""
    if not by.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied("Only admins may download a privacy export.")
    if request_record.kind != PrivacyRequest.Kind.DATA_REQUEST or request_record.export is None:
        raise LookupError("There is no export for this request (not a completed data request, or redacted since).")
    record_action(
        actor=by,
        verb="privacy.export_downloaded",
        target=request_record,
        after={"customer_id": request_record.customer_shopify_id, "shop": request_record.shop.domain},
        request=http_request,
    )
    return json.dumps(request_record.export, indent=2, sort_keys=True).encode()
