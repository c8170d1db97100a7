"""Settings shaped like Sprint2's: the database host comes from DATABASE_HOST, the rest is written here.

The password below is a placeholder: the deploy runs the app with its own settings module that
imports this one and sets the real password.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "testapp-insecure-placeholder"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "pedidos",
    "despachos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "provesi.urls"
WSGI_APPLICATION = "provesi.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "dispatch_db",
        "USER": "dispatch_user",
        "PASSWORD": "placeholder-set-by-the-deploy",
        "HOST": os.environ.get("DATABASE_HOST", "localhost"),
        "PORT": "",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "provesi" / "staticfiles"
