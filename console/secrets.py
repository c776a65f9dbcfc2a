def mask_secret(value: str) -> str:
    """Show that a secret is set and which one it is, never the secret itself."""
    if not value:
        return ""
    if len(value) <= 8:
        return "••••"
    return f"••••{value[-4:]}"
