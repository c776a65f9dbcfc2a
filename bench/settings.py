"""Settings for benchmark servers: the console's own, plus a bare view to compare against."""

from console.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Benchmarks time the pages, not static files: no collectstatic manifest needed.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
