"""Settings for benchmark servers: the console's own, plus a bare view to compare against."""

from console.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
