"""Test settings: the real settings, with a fast password hasher and tasks run inline."""

import os

os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")

from console.settings import *  # noqa: F403
from console.settings import Q_CLUSTER

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",  # for users that child processes log in
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
# Tests that need a real worker start one explicitly; the rest run tasks inline.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# A file, not :memory:, so a real qcluster or web server started by a test (another process)
# sees the same test database. pytest-xdist suffixes the name per worker.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # TEST_DB_SUFFIX keeps two test runs in one checkout apart (e.g. two people, or CI and a shell).
    _suffix = os.environ.get("TEST_DB_SUFFIX", "")
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-console{_suffix}.sqlite3")}  # noqa: F405
elif _suffix := os.environ.get("TEST_DB_SUFFIX", "").replace("-", "_"):
    # On PostgreSQL too: test_<name><suffix>, so two runs on one server do not drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{_suffix}"}  # noqa: F405
# Static files come from the finders in tests; no collectstatic run is needed.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Live-server request threads must not keep connections open past the request, or PostgreSQL
# refuses to drop the test database at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# No outbound sender threads in the test process: tests that send run a Sender themselves.
OUTBOUND_SENDER_THREADS = 0
