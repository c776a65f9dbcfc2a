"""Admin API versions the simulator answers, and Shopify's fall-forward rule."""

# Supported stable versions as of late 2026 (facts file, section 6), oldest first.
SUPPORTED_VERSIONS = ("2026-01", "2026-04", "2026-07", "2026-10")
UNSTABLE = "unstable"
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
# @idempotent became mandatory for the inventory mutations in 2026-04 (optional in 2026-01).
IDEMPOTENCY_REQUIRED_FROM = "2026-04"


def resolve_version(requested: str) -> str:
    """The version that answers a request naming `requested`.

    Supported versions and `unstable` answer as themselves; anything else (retired, not yet
    released, malformed) falls forward to the oldest supported stable version, without an error.
    """
    if requested in SUPPORTED_VERSIONS or requested == UNSTABLE:
        return requested
    return SUPPORTED_VERSIONS[0]


def idempotency_required(version: str) -> bool:
    """Whether the inventory mutations must carry `@idempotent(key:)` on this (resolved) version."""
    return version == UNSTABLE or version >= IDEMPOTENCY_REQUIRED_FROM
