"""The backends' files: the deploy's Django settings module, the root-only environment file,
gunicorn's config, its systemd unit and socket, the helper that runs the app's commands and the
logrotate config of its logs."""

import hashlib
import re

from tasks.backend.layout import LAYOUT, Layout
from tasks.templating import render_template


def allowed_hosts(private_ip: str, public_ip: str | None, upstream: str) -> list[str]:
    """Kong probes with Host = the target's private IP and proxies with the target's address (or the
    upstream's name, depending on Kong's version and settings); operators use the public one."""
    hosts = [private_ip]
    if public_ip and public_ip not in hosts:
        hosts.append(public_ip)
    return hosts + [upstream, "localhost", "127.0.0.1"]


def deploy_settings(
    *,
    db_host: str,
    db_name: str,
    db_user: str,
    hosts: list[str],
    layout: Layout = LAYOUT,
    db_port: int = 5432,
    tls: dict[str, str] | None = None,
) -> str:
    """`tls`: libpq's sslmode and sslrootcert (a managed database, tasks/rds/render.py tls_options)."""
    return render_template(
        "backend/deploy_settings.py.j2",
        app_package=layout.app_package,
        env_file=layout.env_file,
        allowed_hosts=repr(hosts),
        db_name=db_name,
        db_user=db_user,
        db_host=db_host,
        db_port=db_port,
        tls=repr(tls) if tls else None,
    )


def env_file(*, db_host: str, db_password: str, secret_key: str, layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/env.j2",
        service=layout.service,
        run_helper=layout.run_helper,
        settings_module=layout.settings_module,
        python_path=layout.conf_dir,
        db_host=db_host,
        db_password=db_password,
        secret_key=secret_key,
    )


def gunicorn_conf(*, port: int, path: str = "/", layout: Layout = LAYOUT) -> str:
    """`path`: what the master asks once after importing the app (the health path)."""
    return render_template(
        "backend/gunicorn.conf.py.j2", port=port, path=path, current=layout.current, django_log=layout.django_log
    )


def app_unit(*, layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/app.service.j2",
        user=layout.user,
        env_file=layout.env_file,
        current=layout.current,
        venv=layout.venv,
        gunicorn_conf=layout.gunicorn_conf,
        app_package=layout.app_package,
        service=layout.service,
    )


def app_socket(*, port: int, layout: Layout = LAYOUT) -> str:
    return render_template("backend/app.socket.j2", port=port, service=layout.service)


def run_helper(layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/run.sh.j2",
        user=layout.user,
        current=layout.current,
        releases=layout.releases,
        env_file=layout.env_file,
        run_helper=layout.run_helper,
        deploy_log=layout.deploy_log,
        conf_dir=layout.conf_dir,
    )


def requirements_key(requirements: str) -> str:
    """The name of the virtualenv for these requirements (plus what the deploy adds to them)."""
    extras = "\n".join(extra_requirements(requirements))
    return hashlib.sha256(f"{requirements}\n{extras}".encode()).hexdigest()[:16]


# Requirement names are compared case-insensitively, '-' and '_' alike (PEP 503).
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def extra_requirements(requirements: str) -> list[str]:
    """What the deploy adds to the app's requirements, if absent: gunicorn, psycopg2-binary, and
    whitenoise (the deploy's settings module serves static files with it; Sprint2's d1addfe lists
    only Django, and a clean virtualenv then failed to start)."""
    names = set()
    for line in requirements.splitlines():
        match = _NAME.match(line.split("#", 1)[0])
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    extras = []
    if "gunicorn" not in names:
        extras.append("gunicorn")
    if not names & {"psycopg2", "psycopg2-binary", "psycopg", "psycopg-binary"}:
        extras.append("psycopg2-binary")
    if "whitenoise" not in names:
        extras.append("whitenoise")
    return extras


# The app's logrotate config (django.log, backend.log).
LOGROTATE_PATH = "/etc/logrotate.d/sprint2"
# An 8 GB t2.nano disk: at most 8 copies of 50M per log, most of them compressed.
MAX_SIZE = "50M"
KEEP = 7


def app_logrotate(layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/logrotate.j2", django_log=layout.django_log, deploy_log=layout.deploy_log, max_size=MAX_SIZE, keep=KEEP
    )
