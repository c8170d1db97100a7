"""The backends' files: the deploy's Django settings module, the root-only environment file,
gunicorn's config, its systemd unit and socket, and the helper that runs the app's commands."""

import hashlib
import re
from dataclasses import dataclass

from stack.render.templating import render_template


@dataclass(frozen=True)
class Layout:
    """Where everything lives on a backend (see tasks/backend.py for why)."""

    user: str = "sprint2"
    home: str = "/srv/sprint2"
    service: str = "sprint2-app"
    app_package: str = "provesi"  # the Sprint2 project package: provesi.settings, provesi.wsgi
    settings_module: str = "sprint2_deploy_settings"
    django_log: str = "/var/log/django.log"
    deploy_log: str = "/var/log/backend.log"
    secrets_dir: str = "/etc/sprint2"
    run_helper: str = "/usr/local/sbin/sprint2-run"

    # Releases: each commit is built in its own work tree of the mirrored repository, with a
    # virtualenv shared by releases of identical requirements; `current` points at the live one.
    repo = property(lambda self: f"{self.home}/repo.git")
    releases = property(lambda self: f"{self.home}/releases")
    current = property(lambda self: f"{self.home}/current")
    venvs = property(lambda self: f"{self.home}/venvs")
    history = property(lambda self: f"{self.releases}/.history")
    # The live release's virtualenv, through the `current` link.
    venv = property(lambda self: f"{self.current}/.venv")
    conf_dir = property(lambda self: f"{self.home}/conf")
    env_file = property(lambda self: f"{self.secrets_dir}/env")
    unit_path = property(lambda self: f"/etc/systemd/system/{self.service}.service")
    socket_path = property(lambda self: f"/etc/systemd/system/{self.service}.socket")
    settings_path = property(lambda self: f"{self.conf_dir}/{self.settings_module}.py")
    gunicorn_conf = property(lambda self: f"{self.conf_dir}/gunicorn.conf.py")
    marker_script = property(lambda self: f"{self.conf_dir}/deploy_marker.py")
    # The layout before releases (one checkout changed in place), removed once a release serves.
    legacy = property(lambda self: [f"{self.home}/app", f"{self.home}/venv", f"{self.home}/static",
                                    f"{self.home}/preflight"])

    def release(self, commit: str) -> str:
        return f"{self.releases}/{commit}"

    def built_stamp(self, commit: str) -> str:
        """Written last when a release is complete (tree, virtualenv link, static files)."""
        return f"{self.release(commit)}/.deploy-built"


LAYOUT = Layout()


def allowed_hosts(private_ip: str, public_ip: str | None, upstream: str) -> list[str]:
    """Kong probes with Host = the target's private IP and proxies with the target's address (or the
    upstream's name, depending on Kong's version and settings); operators use the public one."""
    hosts = [private_ip]
    if public_ip and public_ip not in hosts:
        hosts.append(public_ip)
    return hosts + [upstream, "localhost", "127.0.0.1"]


def deploy_settings(*, db_host: str, db_name: str, db_user: str, hosts: list[str], layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/deploy_settings.py.j2",
        app_package=layout.app_package, env_file=layout.env_file, allowed_hosts=repr(hosts),
        db_name=db_name, db_user=db_user, db_host=db_host,
    )


def env_file(*, db_host: str, db_password: str, secret_key: str, layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/env.j2",
        service=layout.service, run_helper=layout.run_helper, settings_module=layout.settings_module,
        python_path=layout.conf_dir, db_host=db_host,
        db_password=db_password, secret_key=secret_key,
    )


def gunicorn_workers(cpus: int | None) -> int:
    return 2 * max(cpus or 1, 1) + 1


def gunicorn_conf(*, port: int, workers: int, layout: Layout = LAYOUT) -> str:
    return render_template("backend/gunicorn.conf.py.j2", port=port, workers=workers, django_log=layout.django_log)


def app_unit(*, layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/app.service.j2",
        user=layout.user, env_file=layout.env_file, current=layout.current, venv=layout.venv,
        gunicorn_conf=layout.gunicorn_conf, app_package=layout.app_package, service=layout.service,
    )


def app_socket(*, port: int, layout: Layout = LAYOUT) -> str:
    return render_template("backend/app.socket.j2", port=port, service=layout.service)


def run_helper(layout: Layout = LAYOUT) -> str:
    return render_template(
        "backend/run.sh.j2",
        user=layout.user, current=layout.current, env_file=layout.env_file,
        run_helper=layout.run_helper, deploy_log=layout.deploy_log, conf_dir=layout.conf_dir,
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
