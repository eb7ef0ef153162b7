"""rigfit settings: one file, driven by environment variables (see docs/operations.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR: Path = env_path("RIGFIT_VAR_DIR", BASE_DIR / "var") or BASE_DIR / "var"
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("RIGFIT_PRODUCTION", False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when RIGFIT_PRODUCTION=1")
    # Local runs and tests only; production refuses to start without a real key (above).
    SECRET_KEY = "rigfit-insecure-local-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

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
    "ninja",
    "catalog",
    "benchmarks",
    "probe",
    "inference",
]

MIDDLEWARE = [
    "config.middleware.distrust_forwarded_headers",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.refuse_large_api_bodies",
    "config.middleware.reject_nul_characters",
    "config.middleware.refuse_huge_api_pages",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.throttle_logins",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # Number and unit formatting is needed on nearly every page.
            "builtins": ["django.contrib.humanize.templatetags.humanize", "catalog.templatetags.rigfit"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "catalog.caching.data_version_context",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'rigfit.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", _default_sqlite) or _default_sqlite,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let concurrent writers wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A per-process memory cache by default; RIGFIT_REDIS_URL (e.g. redis://127.0.0.1:6379/0) shares one between
# processes, so rate limits and page-cache invalidation hold across workers (see docs/operations.md).
# With Redis unreachable, "default" (pages, API answers) serves uncached (config.cache.FailOpenRedisCache) and
# "limits" (the submission rate limiter) raises, so submissions are refused with 503 rather than unlimited.
_redis_url = env_str("RIGFIT_REDIS_URL")
# Every key carries this prefix: sites (or test runs) that share one Redis database keep apart by it.
_cache_prefix = env_str("RIGFIT_CACHE_KEY_PREFIX", "rigfit") or "rigfit"
_redis_timeouts = {
    "socket_connect_timeout": env_float("RIGFIT_REDIS_TIMEOUT_S", 0.5, minimum=0.01),
    "socket_timeout": env_float("RIGFIT_REDIS_TIMEOUT_S", 0.5, minimum=0.01),
}
CACHES = (
    {
        "default": {
            "BACKEND": "config.cache.FailOpenRedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": _cache_prefix,
            "OPTIONS": _redis_timeouts,
        },
        "limits": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": _cache_prefix,
            "OPTIONS": _redis_timeouts,
        },
    }
    if _redis_url
    else {
        # One LOCATION: the two aliases share one store in each process (clearing one clears both).
        alias: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "rigfit",
            "OPTIONS": {"MAX_ENTRIES": 5000},
        }
        for alias in ("default", "limits")
    }
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles") or BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Serve straight from static/ too, so a server started without collectstatic still has its CSS and htmx.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("RIGFIT_MANIFEST_STATIC", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Mail (sign-up confirmations): printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "rigfit <noreply@localhost>")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "benchmarks:tokens"
LOGOUT_REDIRECT_URL = "catalog:home"
# Sign-in attempts per client address and per username, on the contributors' and the admin's sign-in forms
# (config.middleware.throttle_logins): (failures, seconds).
RIGFIT_LOGIN_RATE = (env_int("RIGFIT_LOGIN_RATE", 10, minimum=1), 900)

# Uploads: hard caps so no request can exhaust memory (see docs/operations.md).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RIGFIT_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Security headers; `manage.py check --deploy` passes with RIGFIT_PRODUCTION=1.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("RIGFIT_PRODUCTION", False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Load balancers check liveness over plain HTTP: /healthz answers there instead of redirecting to HTTPS.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Content-Security-Policy on every response (django-csp). Scripts only from our own origin: the pages carry no
# inline script (the API docs page adds the hash of its one inline script, config.api). Inline styles stay allowed:
# the memory bars set their widths in style attributes and htmx injects its indicator style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Logs go to stderr: plain text, or one JSON object per line with RIGFIT_LOG_FORMAT=json (config/logs.py). Every 500
# is logged at ERROR by django.request (the API's too, config/api.py) with its traceback, method, path and status.
_log_format = env_str("RIGFIT_LOG_FORMAT", "text")
if _log_format not in ("text", "json"):
    raise ImproperlyConfigured(f"RIGFIT_LOG_FORMAT must be 'text' or 'json', got {_log_format!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": _log_format}},
    "root": {"handlers": ["console"], "level": env_str("RIGFIT_LOG_LEVEL", "WARNING")},
}

# Optional error reporting: with SENTRY_DSN set, unhandled exceptions and ERROR logs go to Sentry as well
# (sentry-sdk, the "sentry" extra). No personal data is sent.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError as _exc:
        raise ImproperlyConfigured(
            "SENTRY_DSN is set but sentry-sdk is not installed (pip install .[sentry])"
        ) from _exc
    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production" if env_bool("RIGFIT_PRODUCTION", False) else "local"),
        send_default_pii=False,
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0),
    )

# rigfit's own settings.
RIGFIT_DEFAULT_CTX = env_int("RIGFIT_DEFAULT_CTX", 4096, minimum=1)
RIGFIT_MAX_CTX = env_int("RIGFIT_MAX_CTX", 1_048_576, minimum=1)
RIGFIT_MAX_USERS = env_int("RIGFIT_MAX_USERS", 256, minimum=1)
RIGFIT_API_MAX_PAGE_SIZE = env_int("RIGFIT_API_MAX_PAGE_SIZE", 100, minimum=1)
# The highest ?page= an API list accepts (config.middleware.refuse_huge_api_pages): far past any real page, and
# page x page size stays far below the 2^63 offset at which the database query failed as a 500.
RIGFIT_API_MAX_PAGE = 1_000_000
# A Hugging Face access token for `import_hf` / "Add a model" on gated or private repositories (catalog.hf).
RIGFIT_HF_TOKEN = env_str("RIGFIT_HF_TOKEN")

# Community benchmarks. Behind a reverse proxy, list its address(es) here, or every client shares one rate limit;
# X-Forwarded-For is believed only when REMOTE_ADDR is one of these.
RIGFIT_TRUSTED_PROXIES = env_list("RIGFIT_TRUSTED_PROXIES", [])
for _proxy in RIGFIT_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"RIGFIT_TRUSTED_PROXIES: {_proxy!r} is not an address or network") from _exc
if RIGFIT_TRUSTED_PROXIES:
    # X-Forwarded-Proto says whether the client used HTTPS. It is believed only behind the listed proxies, and
    # config.middleware.distrust_forwarded_headers drops it from any request that did not come through one of them.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Limits count runs (a llama-bench output of 20 tests is 20): per anonymous client address per hour, and per signed-in
# user per hour (all their tokens together; their address is then charged one per request).
RIGFIT_BENCH_RATE_IP = (env_int("RIGFIT_BENCH_RATE_IP", 30, minimum=1), 3600)
RIGFIT_BENCH_RATE_TOKEN = (env_int("RIGFIT_BENCH_RATE_TOKEN", 300, minimum=1), 3600)
RIGFIT_BENCH_MAX_RUNS_PER_REQUEST = env_int("RIGFIT_BENCH_MAX_RUNS_PER_REQUEST", 50, minimum=1)
# Where the counts live: "cache" (the limits alias: Redis with RIGFIT_REDIS_URL, else per process) or "database"
# (shared by every worker and host on the one database). Production without Redis counts in the database, so the
# limits hold across gunicorn workers instead of multiplying by their number.
RIGFIT_BENCH_RATE_STORE = env_str(
    "RIGFIT_BENCH_RATE_STORE", "database" if env_bool("RIGFIT_PRODUCTION", False) and not _redis_url else "cache"
)
if RIGFIT_BENCH_RATE_STORE not in ("cache", "database"):
    raise ImproperlyConfigured(
        f"RIGFIT_BENCH_RATE_STORE must be 'cache' or 'database', got {RIGFIT_BENCH_RATE_STORE!r}"
    )
# Speed estimates use efficiency factors fitted to accepted community runs where enough exist.
RIGFIT_SPEED_MODEL_PROVIDER = env_str("RIGFIT_SPEED_MODEL_PROVIDER", "benchmarks.calibration.calibrated_speed_model")
RIGFIT_BENCH_ROOFLINE_MARGIN = env_float("RIGFIT_BENCH_ROOFLINE_MARGIN", 1.15, minimum=1.0)
RIGFIT_BENCH_PREFILL_MARGIN = env_float("RIGFIT_BENCH_PREFILL_MARGIN", 2.0, minimum=1.0)
