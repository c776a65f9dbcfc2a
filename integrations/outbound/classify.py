"""What an answer from Shopify means, in plain words, and what to do next.

Retryable: throttled (429 or THROTTLED), 5xx, timeouts, refused connections, an idempotent request
still running. Everything else is not retried automatically, because sending it again gives the
same answer: a bad token, a frozen or locked shop, a missing scope, a record that is gone, a
payload Shopify refuses, or a compare guard that failed because the record changed in Shopify
since we read it (a state conflict to reconcile, never to overwrite).
"""

from dataclasses import dataclass, field

from integrations.outbound.client import Reply
from integrations.outbound.operations import Operation

RETRYABLE = "retryable"
NON_RETRYABLE = "non_retryable"
STALE_CODES = {"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"}
RETRYABLE_STATUSES = {429, 500, 502, 503, 504, 530, 540}


@dataclass
class Verdict:
    succeeded: bool
    classification: str | None = None
    kind: str = ""
    reason: str = ""
    next_step: str = ""
    throttled: bool = False
    user_errors: list[dict] = field(default_factory=list)
    result: dict | None = None

    @property
    def retryable(self) -> bool:
        return self.classification == RETRYABLE


# kind -> (retryable?, next step for a person)
NEXT_STEPS: dict[str, tuple[bool, str]] = {
    "throttled": (
        True,
        "Nothing to do: the call waits for room in the shop's rate-limit bucket and is sent again. If many "
        "calls are throttled, something else is spending the shop's API budget.",
    ),
    "server_error": (True, "Nothing to do yet: Shopify had a problem and the call is retried with backoff."),
    "timeout": (
        True,
        "Nothing to do yet: it is retried with the same idempotency key, so it can apply at most once. "
        "If it keeps timing out, check Shopify's status page.",
    ),
    "connection": (
        True,
        "Nothing to do yet: it is retried. If it keeps failing, check the shop's API URL and the network.",
    ),
    "concurrent": (
        True,
        "Nothing to do: an earlier try with the same key is still running in Shopify; this one waits for it.",
    ),
    "unauthorized": (
        False,
        "Check the app installation and the access token on the shop's page: the token was revoked, expired or "
        "is wrong. Send the call again once the shop has a working token.",
    ),
    "frozen": (
        False,
        "The store is frozen (unpaid bill or plan limit). Pause the shop's queue and ask the merchant to settle "
        "the account; send again once it is unfrozen.",
    ),
    "locked": (False, "The store is locked by Shopify. Pause the shop's queue and contact Shopify support."),
    "missing_scope": (
        False,
        "The app lacks a scope this call needs. See the scope check on the shop's API health page (granted versus "
        "required) and ask the merchant to approve it; the other calls needing the scope are held meanwhile and run "
        "once a scope check finds it granted. Then send this one again.",
    ),
    "not_found": (
        False,
        "The record is gone from Shopify (deleted?): check it in the store admin; nothing to resend. If Shopify "
        "answered 404 for the API itself, the shop's API URL or domain is wrong: fix it on the shop's page.",
    ),
    "redirect": (
        False,
        "The shop's API URL redirects somewhere else; the console never follows a redirect with the access token. "
        "Fix the API URL on the shop's page, then send again.",
    ),
    "bad_url": (False, "The shop's API URL is malformed. Fix it on the shop's page, then send again."),
    "invalid": (
        False,
        "Shopify refused the payload. Fix the fields listed in the errors, then enqueue a corrected call.",
    ),
    "stale": (
        False,
        "The record changed in Shopify since we read it, so the compare guard refused the write. Reconcile it "
        "(a worksheet compares both sides); never send it again blindly.",
    ),
    "key_mismatch": (
        False,
        "The idempotency key was already used with other input: a bug in whatever built this call. Report it; do "
        "not resend.",
    ),
    "uninstalled": (
        False,
        "The app was uninstalled, so its token is revoked. Nothing is sent until it is reinstalled.",
    ),
    "gave_up": (
        False,
        "Shopify kept failing past the retry budget. Look at the tries below; send again from this page once the "
        "cause has cleared.",
    ),
}


# A 401 the sender could not cure by refreshing the token (the refresh failed, or the new token
# was refused too): the shop's other calls are held by a token hold instead of failing one by one.
TOKEN_HELD_NEXT_STEP = (
    "The access token could not be refreshed, so the shop's other calls are held (not sent) until it has a "
    "working one: see the token on the shop's API health page. Reinstall the app or set a new token, then send "
    "this call again."
)


def verdict(kind: str, reason: str, **extra) -> Verdict:
    retryable, next_step = NEXT_STEPS[kind]
    return Verdict(
        succeeded=False,
        classification=RETRYABLE if retryable else NON_RETRYABLE,
        kind=kind,
        reason=reason,
        next_step=next_step,
        **extra,
    )


def classify(reply: Reply, operation: Operation) -> Verdict:
    if reply.transport_error == "timeout":
        return verdict("timeout", f"no answer in time ({reply.error_message})")
    if reply.transport_error == "bad_url":
        return verdict("bad_url", f"the shop's API URL is not usable ({reply.error_message})")
    if reply.transport_error:
        return verdict("connection", f"could not reach Shopify ({reply.error_message})")
    status = reply.http_status or 0
    if 300 <= status < 400:
        return verdict("redirect", f"HTTP {status}: the API URL redirects to {reply.location or '(no Location)'}")
    codes = set(reply.error_codes)
    if status == 429 or "THROTTLED" in codes:
        wait = f"; Retry-After {reply.retry_after:g} s" if reply.retry_after is not None else ""
        return verdict(
            "throttled", f"throttled by Shopify (HTTP {status}{', THROTTLED' if codes else ''}{wait})", throttled=True
        )
    if status >= 500 or "INTERNAL_SERVER_ERROR" in codes:
        return verdict("server_error", f"Shopify answered HTTP {status}: {_rest_errors(reply)}")
    if status == 401:
        return verdict("unauthorized", f"HTTP 401: {_rest_errors(reply)}")
    if status == 402:
        return verdict("frozen", f"HTTP 402: {_rest_errors(reply)}")
    if status == 423:
        return verdict("locked", f"HTTP 423: {_rest_errors(reply)}")
    if status == 403 or "ACCESS_DENIED" in codes:
        return verdict("missing_scope", f"access denied: {_graphql_errors(reply) or _rest_errors(reply)}")
    if status == 404:
        return verdict(
            "not_found",
            f"HTTP 404: {_rest_errors(reply)} (for the GraphQL endpoint itself this means Shopify does not know the "
            "shop at this API URL)",
        )
    if status != 200 or reply.errors:
        return verdict("invalid", f"HTTP {status}: {_graphql_errors(reply) or _rest_errors(reply)}")
    payload = reply.data.get(operation.mutation)
    if not isinstance(payload, dict):
        return verdict("invalid", f"Shopify's answer has no {operation.mutation} result")
    user_errors = [error for error in payload.get("userErrors") or [] if isinstance(error, dict)]
    if user_errors:
        return _user_error_verdict(user_errors)
    return Verdict(succeeded=True, reason="applied", result=payload.get(operation.payload_key))


def _user_error_verdict(user_errors: list[dict]) -> Verdict:
    codes = {str(error.get("code") or "") for error in user_errors}
    words = "; ".join(_field_error(error) for error in user_errors)
    if codes & STALE_CODES:
        return verdict("stale", f"compare guard failed: {words}", user_errors=user_errors)
    if "IDEMPOTENCY_CONCURRENT_REQUEST" in codes:
        return verdict("concurrent", words, user_errors=user_errors)
    if "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" in codes:
        return verdict("key_mismatch", words, user_errors=user_errors)
    messages = " ".join(str(error.get("message") or "").lower() for error in user_errors)
    if "not found" in messages or "does not exist" in messages:
        return verdict("not_found", f"the record is gone: {words}", user_errors=user_errors)
    return verdict("invalid", f"Shopify refused the payload: {words}", user_errors=user_errors)


def _field_error(error: dict) -> str:
    field_path = error.get("field")
    where = ".".join(str(part) for part in field_path) if isinstance(field_path, list) else ""
    code = f" [{error['code']}]" if error.get("code") else ""
    return f"{where + ': ' if where else ''}{error.get('message', '')}{code}"


def _graphql_errors(reply: Reply) -> str:
    return "; ".join(
        f"{error.get('message', '')}" + (f" [{code}]" if (code := (error.get("extensions") or {}).get("code")) else "")
        for error in reply.errors
    )[:1000]


def _rest_errors(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict) and "errors" in body:
        errors = body["errors"]
        return (errors if isinstance(errors, str) else str(errors))[:1000]
    return (reply.excerpt or "(empty body)")[:300]
