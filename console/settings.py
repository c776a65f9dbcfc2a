"""Settings for the Shopify integration support console.

Every value comes from the environment (or a `.env` file beside manage.py) through django-environ;
`.env.example` documents each one. The defaults give a working local console on SQLite.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The .env beside manage.py (`make run` writes a development one when there is none); ENV_FILE
# points elsewhere. Variables already in the environment win.
ENV_FILE = Path(env.str("ENV_FILE", default=str(BASE_DIR / ".env")))
environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="insecure-local-development-key-change-me" if DEBUG else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_q",
    "axes",  # login throttling (see Auth)
    "csp",  # Content-Security-Policy (see Security)
    "console",
    "integrations",
    "incidents",
    "incidents.worksheets",
    "console.alerts",
]

MIDDLEWARE = [
    # First: every log line of the request, and its response, carry the request id (X-Request-ID).
    "console.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a login unless it is marked @login_not_required (webhook receiver, /healthz).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Cache-Control: no-store on every response to a logged-in user (and on exports).
    "console.middleware.NoStoreForSignedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a refused login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default; DATABASE_URL=postgres://user:pass@host:5432/name for PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'console.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The web process and the qcluster worker write at the same time: WAL lets readers run beside
    # a writer, IMMEDIATE takes the write lock at BEGIN (no deadlock on lock upgrade), and the
    # timeout makes a writer wait for the lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
    # A database host that does not answer must not hold a request for minutes (the webhook
    # receiver answers Shopify within 5 s). libpq's minimum is 2 s; a URL's ?connect_timeout= wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=2)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Task queue (django-q2) -----------------------------------------------------------------
# ORM broker (our own database) by default; Redis when REDIS_URL is set.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "console",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=60),
    "retry": env.int("Q_RETRY", default=120),  # must exceed timeout, or a slow task runs twice
    # Our own tables own retries (Job/Attempt rows); a failed task is kept in django_q's
    # failure list and acknowledged rather than redelivered blindly.
    "ack_failures": True,
    "max_attempts": 1,
    "save_limit": env.int("Q_SAVE_LIMIT", default=10000),
    "save_limit_per": "func",
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = env.float("Q_POLL", default=0.5)

# --- Webhook intake -------------------------------------------------------------------------
# Bodies above this are refused with 413 and recorded without the body. Shopify payloads can
# exceed 1 MB (large orders), so the default leaves ample room.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=10 * 1024 * 1024)
# How long (seconds) the receiver caches a shop's secrets in memory; a rotation takes effect
# within this time (the previous secret keeps verifying for an hour anyway).
WEBHOOK_SHOP_CACHE_SECONDS = env.float("WEBHOOK_SHOP_CACHE_SECONDS", default=5.0)
# On PostgreSQL the receiver's one statement is a server-side prepared statement (parsed and
# planned once per connection; that was most of its database time). Set False behind a
# transaction-mode pooler that cannot carry prepared statements (PgBouncer before 1.21).
WEBHOOK_PREPARED_STATEMENT = env.bool("WEBHOOK_PREPARED_STATEMENT", default=True)
# How long (seconds) the receiver may wait on the database for one request, all told (SQLite's
# busy timeout, PostgreSQL's lock and statement timeouts); then it answers 503 and Shopify
# retries. Shopify gives up on an answer after 5 s.
WEBHOOK_DB_TIMEOUT_SECONDS = env.float("WEBHOOK_DB_TIMEOUT_SECONDS", default=3.0)
# Anyone can post to the receiver: of a request that did not verify (unknown shop, bad signature,
# missing headers), only the first this-many bytes of the body are stored, with the whole body's
# size and SHA-256. Verified bodies are stored whole (up to WEBHOOK_MAX_BODY_BYTES).
WEBHOOK_REJECTED_BODY_PREFIX_BYTES = env.int("WEBHOOK_REJECTED_BODY_PREFIX_BYTES", default=16 * 1024)
# Rejected deliveries (requests that never became an Event) are deleted after this many days by
# the worker's once-a-minute schedule, in small batches; 0 keeps them forever.
WEBHOOK_REJECTED_RETENTION_DAYS = env.int("WEBHOOK_REJECTED_RETENTION_DAYS", default=14)
# The public address of this console's receiver (`POST /webhooks/shopify`): where a re-subscribe
# (integrations.shops.subscriptions) asks Shopify to send a topic again. The default suits the
# development stack and its simulator; production sets its HTTPS address.
CONSOLE_WEBHOOK_URL = env.str("CONSOLE_WEBHOOK_URL", default="http://127.0.0.1:8000/webhooks/shopify")
# Event processing. Every qcluster worker process runs EVENT_PUMP_THREADS pumps (0: none, e.g. a
# cluster kept for other tasks); each claims EVENT_BATCH_SIZE events at a time. A pump that has
# not beaten its heartbeat for EVENT_CLAIM_LEASE_SECONDS is taken for dead and its claims go back
# to the queue (pumps beat every second).
EVENT_PUMP_THREADS = env.int("EVENT_PUMP_THREADS", default=1)
EVENT_BATCH_SIZE = env.int("EVENT_BATCH_SIZE", default=100)
EVENT_CLAIM_LEASE_SECONDS = env.int("EVENT_CLAIM_LEASE_SECONDS", default=30)
# How long `integrations.tasks.pump_events` runs when queued as a task (must stay below Q_TIMEOUT).
EVENT_PUMP_RUN_SECONDS = env.int("EVENT_PUMP_RUN_SECONDS", default=50)

# Outbound calls to Shopify (integrations.outbound). Every qcluster worker process also runs
# OUTBOUND_SENDER_THREADS senders. The throttle models each shop's GraphQL bucket in the database,
# or in Redis ("redis", needs REDIS_URL); until Shopify first reports a shop's bucket it is taken
# to be OUTBOUND_BUCKET_MAXIMUM points restoring OUTBOUND_BUCKET_RESTORE_RATE per second (the
# standard plan). Replay and reconcile lanes leave OUTBOUND_LIVE_RESERVE (a fraction of the bucket)
# for live calls. Retryable failures back off from OUTBOUND_BACKOFF_BASE seconds, doubling up to
# OUTBOUND_BACKOFF_CAP, for at most OUTBOUND_MAX_ATTEMPTS tries; a running call whose sender has
# held it OUTBOUND_CLAIM_LEASE_SECONDS (more than connect + read timeout) goes back to the queue.
OUTBOUND_SENDER_THREADS = env.int("OUTBOUND_SENDER_THREADS", default=1)
OUTBOUND_CONNECT_TIMEOUT = env.float("OUTBOUND_CONNECT_TIMEOUT", default=3.05)
OUTBOUND_READ_TIMEOUT = env.float("OUTBOUND_READ_TIMEOUT", default=10.0)
OUTBOUND_THROTTLE_BACKEND = env.str("OUTBOUND_THROTTLE_BACKEND", default="database")
OUTBOUND_BUCKET_MAXIMUM = env.float("OUTBOUND_BUCKET_MAXIMUM", default=2000.0)
OUTBOUND_BUCKET_RESTORE_RATE = env.float("OUTBOUND_BUCKET_RESTORE_RATE", default=100.0)
OUTBOUND_LIVE_RESERVE = env.float("OUTBOUND_LIVE_RESERVE", default=0.25)
OUTBOUND_BACKOFF_BASE = env.float("OUTBOUND_BACKOFF_BASE", default=1.0)
OUTBOUND_BACKOFF_CAP = env.float("OUTBOUND_BACKOFF_CAP", default=300.0)
OUTBOUND_MAX_ATTEMPTS = env.int("OUTBOUND_MAX_ATTEMPTS", default=8)
OUTBOUND_CLAIM_LEASE_SECONDS = env.int("OUTBOUND_CLAIM_LEASE_SECONDS", default=60)

# --- Replay ---------------------------------------------------------------------------------
# The most events one replay may cover; items a pump takes per replay pass (only when no live
# event waits, so a live event waits at most one such batch); and the sizes above which a
# replay needs an admin other than the requester: events with jobs to run, records touched,
# shops, and the sum of order totals at stake.
REPLAY_MAX_EVENTS = env.int("REPLAY_MAX_EVENTS", default=10000)
REPLAY_BATCH_SIZE = env.int("REPLAY_BATCH_SIZE", default=5)
# A pump leaves the replay lane alone while a live event has waited longer than this (ms); while
# live webhooks arrive, one replay batch runs at a time (integrations.replay.runner.live_leaves_room).
REPLAY_YIELD_MS = env.int("REPLAY_YIELD_MS", default=50)
# Where replays run: "pumps" (every worker's event pump, when live leaves room) or "process"
# (only in `manage.py replay_lane` processes, at a lower CPU priority: for busy machines).
REPLAY_LANE = env.str("REPLAY_LANE", default="pumps")
if REPLAY_LANE not in ("pumps", "process"):
    raise ImproperlyConfigured("REPLAY_LANE must be 'pumps' or 'process'")
# Reconciliation worksheets (incidents.worksheets): the most records one lists, how many records
# one GraphQL nodes(ids:) read takes, how long a task runs before it hands on to a fresh one (under
# Q_TIMEOUT), the minimum age (s) under which a changed record is "in flight", and per-resource
# rules overriding the defaults, as JSON: {"orders": {"ignored": ["currency"], "min_age_seconds":
# 600, "tolerances": {"total_price": "0.01"}}}.
WORKSHEET_MAX_RECORDS = env.int("WORKSHEET_MAX_RECORDS", default=10000)
WORKSHEET_READ_BATCH = env.int("WORKSHEET_READ_BATCH", default=50)
WORKSHEET_TASK_SECONDS = env.int("WORKSHEET_TASK_SECONDS", default=40)
WORKSHEET_MIN_AGE_SECONDS = env.int("WORKSHEET_MIN_AGE_SECONDS", default=300)
WORKSHEET_RULES = env.json("WORKSHEET_RULES", default={})
# Incidents: minutes to the next status update by severity (the update is overdue after that);
# the rubric's "widespread" thresholds; the dashboard suggests an incident when a shop's topic or
# outbound operation fails more than INCIDENT_SPIKE_FAILURES times in INCIDENT_SPIKE_MINUTES.
INCIDENT_UPDATE_MINUTES = {
    "sev1": env.int("INCIDENT_UPDATE_MINUTES_SEV1", default=30),
    "sev2": env.int("INCIDENT_UPDATE_MINUTES_SEV2", default=60),
    "sev3": env.int("INCIDENT_UPDATE_MINUTES_SEV3", default=240),
    "sev4": env.int("INCIDENT_UPDATE_MINUTES_SEV4", default=1440),
}
INCIDENT_WIDESPREAD_RECORDS = env.int("INCIDENT_WIDESPREAD_RECORDS", default=100)
INCIDENT_WIDESPREAD_SHOPS = env.int("INCIDENT_WIDESPREAD_SHOPS", default=3)
INCIDENT_SPIKE_FAILURES = env.int("INCIDENT_SPIKE_FAILURES", default=20)
INCIDENT_SPIKE_MINUTES = env.int("INCIDENT_SPIKE_MINUTES", default=15)
INCIDENT_MAIL_PREFIX = env.str("INCIDENT_MAIL_PREFIX", default="[integrations]")
REPLAY_APPROVAL_EVENTS = env.int("REPLAY_APPROVAL_EVENTS", default=100)
REPLAY_APPROVAL_RECORDS = env.int("REPLAY_APPROVAL_RECORDS", default=100)
REPLAY_APPROVAL_SHOPS = env.int("REPLAY_APPROVAL_SHOPS", default=1)
REPLAY_APPROVAL_MONEY = env.int("REPLAY_APPROVAL_MONEY", default=10000)

if OUTBOUND_THROTTLE_BACKEND not in ("database", "redis"):
    raise ImproperlyConfigured("OUTBOUND_THROTTLE_BACKEND must be 'database' or 'redis'")
if OUTBOUND_THROTTLE_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("OUTBOUND_THROTTLE_BACKEND=redis needs REDIS_URL")

# --- Retention ------------------------------------------------------------------------------
# The worker's retention run (integrations.inbound.retention, every few minutes, in small batches):
# the raw bodies and headers of events received more than PAYLOAD_RETENTION_DAYS ago are purged
# (the event, its trace, jobs and attempts stay, marked purged), and jobs that succeeded more than
# ATTEMPT_RETENTION_DAYS ago keep only their first and last attempts (calls to Shopify likewise).
# 0 keeps everything. Audit entries, incidents, worksheets and privacy requests are never purged.
PAYLOAD_RETENTION_DAYS = env.int("PAYLOAD_RETENTION_DAYS", default=30)
ATTEMPT_RETENTION_DAYS = env.int("ATTEMPT_RETENTION_DAYS", default=90)

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A login lasts this long (seconds; default 8 hours, one shift), then the console asks again.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
# Login throttling (django-axes). LOGIN_FAILURE_LIMIT failed logins for one username, or from one
# address, lock that username or address out until LOGIN_LOCKOUT_MINUTES after the last failure:
# the login page answers 429 and says so, without checking the password. Each lockout is audited;
# an admin can lift one early (Audit trail > Login lockouts, or `manage.py logins unlock`).
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Refused attempts during a lockout are not counted, so it ends when the page says it does.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "console.logins.lockout_response"
AXES_HANDLER = "console.logins.AxesHandler"  # axes' database handler, NUL-safe on PostgreSQL
AXES_CLIENT_IP_CALLABLE = "console.clientip.client_ip"
# How many reverse proxies in front of the app append to X-Forwarded-For (0: use the connection's
# address). Behind one load balancer set 1, or every login shares the balancer's address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Email ----------------------------------------------------------------------------------
# Incident notifications go through Django's mail backend: printed to the worker's output by
# default; set EMAIL_URL=smtp://user:password@host:587/?tls=True (or smtp+ssl://...) to send them.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="console@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# --- Alerts (console.alerts) ----------------------------------------------------------------
# Rules the worker evaluates every minute; an alert e-mails its audience's incident notification
# list for its severity when it opens and when it resolves, and posts to ALERT_SLACK_WEBHOOK_URL (a
# Slack-compatible incoming webhook) when set. Failure rate: a shop's topic whose events received
# in the last ALERT_WINDOW_MINUTES failed more than ALERT_FAILURE_RATE (0..1) of the settled ones,
# from ALERT_FAILURE_MIN_EVENTS settled. Backlog: the oldest queued event or due outbound call
# older than ALERT_BACKLOG_SECONDS. More than ALERT_REJECTED_SPIKE rejected webhooks in the window.
# A shop's queue paused longer than ALERT_PAUSED_MINUTES. Fewer than ALERT_MIN_PUMPS event pumps
# beating within ALERT_HEARTBEAT_SECONDS (set it to the pumps you run to hear when one machine dies).
ALERT_WINDOW_MINUTES = env.int("ALERT_WINDOW_MINUTES", default=15)
ALERT_FAILURE_RATE = env.float("ALERT_FAILURE_RATE", default=0.2)
ALERT_FAILURE_MIN_EVENTS = env.int("ALERT_FAILURE_MIN_EVENTS", default=20)
ALERT_BACKLOG_SECONDS = env.int("ALERT_BACKLOG_SECONDS", default=300)
ALERT_REJECTED_SPIKE = env.int("ALERT_REJECTED_SPIKE", default=100)
ALERT_PAUSED_MINUTES = env.int("ALERT_PAUSED_MINUTES", default=60)
ALERT_HEARTBEAT_SECONDS = env.int("ALERT_HEARTBEAT_SECONDS", default=120)
ALERT_MIN_PUMPS = env.int("ALERT_MIN_PUMPS", default=1)
ALERT_SLACK_WEBHOOK_URL = env.str("ALERT_SLACK_WEBHOOK_URL", default="")

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; kept default
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts, styles and everything else from our own origin
# only; no inline script or style, no eval (the bundled htmx needs none: no hx-on, and
# base.html turns htmx's eval and injected indicator style off), no framing, no plugins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        # Where browsers report violations (empty: nowhere).
        "report-uri": env.str("CSP_REPORT_URI", default="") or None,
    },
}
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers and monitors probe /healthz and /readyz over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# e.g. SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https behind a TLS-terminating proxy.
_proxy_header = env.tuple("SECURE_PROXY_SSL_HEADER", default=())
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) if _proxy_header else None

# --- Metrics (Prometheus) -------------------------------------------------------------------
# GET /metrics (console.metrics) answers only callers that pass every check configured here:
# METRICS_TOKEN (sent as "Authorization: Bearer <token>", at least 16 characters) and
# METRICS_ALLOWED_IPS (addresses or networks, e.g. 10.0.0.0/8, matched against the client address
# as TRUSTED_PROXY_COUNT reads it). With neither, it refuses everyone (403). Prometheus scrapes
# each node itself, often over plain HTTP inside the private network, so /metrics is not
# redirected to HTTPS (keep a token off networks others can read). METRICS_SHOP_LABEL=False
# drops the shop label (shop="all") for fleets with too many shops for one series each.
# PROMETHEUS_MULTIPROC_DIR (read by prometheus_client itself) turns on its multiprocess mode: every
# process of a machine (gunicorn workers, qcluster workers, commands) writes its counts there and a
# scrape adds them up. It must be set before prometheus_client is first imported (a value in .env
# is: the settings read .env first) and emptied before the machine's console processes start.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
METRICS_SHOP_LABEL = env.bool("METRICS_SHOP_LABEL", default=True)
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters")
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_error}") from None
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # set but empty would mean multiprocess mode, nowhere
if not DEBUG:
    SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics/?$"]

# --- Logging --------------------------------------------------------------------------------
# LOG_FORMAT: "text" (the default, for people: `make run`, the devstack) or "json" (one JSON object
# a line with timestamp, level, logger and message, for a log pipeline). Either way a line carries
# the request id and, where it is about one, the shop, webhook, event, job, outbound call and replay
# (console.logcontext), so it can be traced back to its page.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'text' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "console.logcontext.ContextFilter"}},
    "formatters": {
        "text": {"()": "console.logcontext.TextFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Health and readiness -------------------------------------------------------------------
# GET /healthz answers while the process does (liveness: for the load balancer). GET /readyz and
# `manage.py readiness` check the rest (console.readiness): a write to the database within
# READY_DB_TIMEOUT_SECONDS, no unapplied migration (looked up at most every
# READY_MIGRATIONS_CACHE_SECONDS per process), a pump heartbeat younger than
# READY_WORKER_HEARTBEAT_SECONDS, and the oldest queued event and oldest due outbound call younger
# than READY_MAX_EVENT_AGE_SECONDS and READY_MAX_CALL_AGE_SECONDS.
READY_DB_TIMEOUT_SECONDS = env.float("READY_DB_TIMEOUT_SECONDS", default=2.0)
READY_MIGRATIONS_CACHE_SECONDS = env.float("READY_MIGRATIONS_CACHE_SECONDS", default=60.0)
READY_WORKER_HEARTBEAT_SECONDS = env.float("READY_WORKER_HEARTBEAT_SECONDS", default=60.0)
READY_MAX_EVENT_AGE_SECONDS = env.float("READY_MAX_EVENT_AGE_SECONDS", default=300.0)
READY_MAX_CALL_AGE_SECONDS = env.float("READY_MAX_CALL_AGE_SECONDS", default=300.0)
