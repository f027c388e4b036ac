"""Django settings, read from the environment so one code base runs embedded (SQLite) and in production.

Environment:
  SIYU_DATABASE_URL   sqlite:///path/to.db (default: var/siyu.sqlite3) or postgres://user:pw@host:port/db
  SIYU_REDIS_URL      redis://host:port/0 — when set, background tasks go through Redis; otherwise SQLite
  SIYU_SECRET_KEY     Django secret key (generated into var/ for the embedded demo)
  SIYU_DATA_KEY       base64 32-byte key for personal-data encryption (generated into var/ for the demo)
  SIYU_DATA_DIR       where the embedded database, task queue and generated keys live (default: ./var)
  SIYU_DEBUG          1 to enable Django debug pages (never in production)
  SIYU_ALLOWED_HOSTS  comma-separated host names
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from siyu.core.keys import load_or_create_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SIYU_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SIYU_SECRET_KEY") or load_or_create_secret(DATA_DIR / "secret_key", nbytes=48)
DEBUG = os.environ.get("SIYU_DEBUG", "0") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("SIYU_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("SIYU_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "siyu.core",
    "siyu.customers",
    "siyu.channels",
    "siyu.wechat",
    "siyu.wechat.official",
    "siyu.wechat.consumer",
    "siyu.wechat.work",
    "siyu.wechat.pay",
    "siyu.loyalty",
    "siyu.commerce.catalog",
    "siyu.commerce.promotions",
    "siyu.commerce.orders",
    "siyu.commerce.store",
    "siyu.engagement.inbox",
    "siyu.engagement.rfm",
    "siyu.engagement.communities",
    "siyu.engagement.segments",
    "siyu.engagement.service",
    "siyu.engagement.journeys",
    "siyu.analytics",
    "siyu.console",
    "siyu.simulation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "siyu.console.middleware.ChineseFirstLocaleMiddleware",  # Chinese unless English was chosen
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "siyu.core.middleware.WorkspaceMiddleware",
]

ROOT_URLCONF = "siyu.urls"
WSGI_APPLICATION = "siyu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """Turn SIYU_DATABASE_URL into a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path) or str(DATA_DIR / "siyu.sqlite3")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            path = path.lstrip("/") if not Path(path).is_absolute() else path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # WAL lets the console read while the worker and the ingestion API write.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
            },
            "TEST": {"NAME": os.environ.get("SIYU_TEST_SQLITE_NAME") or None},
        }
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": int(os.environ.get("SIYU_DB_CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ValueError(f"unsupported SIYU_DATABASE_URL scheme: {parsed.scheme!r}")


DATABASE_URL = os.environ.get("SIYU_DATABASE_URL") or f"sqlite:///{DATA_DIR / 'siyu.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"

# Chinese first, English available.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "siyu" / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "siyu.console.staticfinders.PackagedAssetsFinder",
]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Background work: Huey on SQLite for one machine, on Redis for several.
REDIS_URL = os.environ.get("SIYU_REDIS_URL", "")
if REDIS_URL:
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": os.environ.get("SIYU_QUEUE_NAME", "siyu"),
        "url": REDIS_URL,
        "immediate": False,
        "consumer": {"workers": int(os.environ.get("SIYU_WORKERS", "4")), "worker_type": "thread"},
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": os.environ.get("SIYU_QUEUE_NAME", "siyu"),
        "filename": os.environ.get("SIYU_QUEUE_FILE", str(DATA_DIR / "tasks.sqlite3")),
        "immediate": os.environ.get("SIYU_TASKS_IMMEDIATE", "0") == "1",
        "consumer": {"workers": int(os.environ.get("SIYU_WORKERS", "2")), "worker_type": "thread"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SIYU_LOG_LEVEL", "WARNING")},
}

# Ingestion limits (SPEC T4 / issue 2): stable, documented, and tested.
SIYU_INGEST_MAX_EVENTS = int(os.environ.get("SIYU_INGEST_MAX_EVENTS", "1000"))
SIYU_INGEST_MAX_BYTES = int(os.environ.get("SIYU_INGEST_MAX_BYTES", str(4 * 1024 * 1024)))
SIYU_INGEST_MAX_FUTURE_SECONDS = 600
SIYU_INGEST_MAX_AGE_DAYS = 3 * 365
DATA_UPLOAD_MAX_MEMORY_SIZE = SIYU_INGEST_MAX_BYTES + 1024

# WeChat (SPEC W). Siyu's own public URL: WeChat calls it back, OAuth redirects to it.
SIYU_PUBLIC_URL = os.environ.get("SIYU_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# Simulator mode: when set, every request to a WeChat host goes to this base instead, as
# {base}/{host}{path} (e.g. http://127.0.0.1:8766/api.weixin.qq.com/cgi-bin/token), and any other
# host is refused. Production leaves it empty and talks to WeChat's servers.
SIYU_WECHAT_BASE_URL = os.environ.get("SIYU_WECHAT_BASE_URL", "").rstrip("/")
SIYU_WECHAT_TIMEOUT = float(os.environ.get("SIYU_WECHAT_TIMEOUT", "5"))

# Commerce (SPEC X4): unpaid orders are cancelled after this many minutes and give back stock, coupons, points.
SIYU_ORDER_PAY_MINUTES = int(os.environ.get("SIYU_ORDER_PAY_MINUTES", "30"))
