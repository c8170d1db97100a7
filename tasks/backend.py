"""The backends: the Django application under systemd with gunicorn.

Defaults (stack/settings.py SCHEMA): app_repo (Sprint2 on GitHub), app_ref b0abfcb (its newest
commit that works), app_port 8080, app_setup_commands (makemigrations, migrate, both --noinput),
app_populate_commands (populate.py, populateDespachos.py), allow_destructive_migrations (false),
gateway.health_path and gateway.active.healthy_statuses. Layout on the host (stack/render/backend.py):

  /srv/sprint2/app      the checkout (owned by the app user `sprint2`; never edited by the deploy)
  /srv/sprint2/venv     its virtualenv; /srv/sprint2/static collected static files
  /srv/sprint2/conf     the deploy's settings module (imports provesi.settings), gunicorn.conf.py
  /etc/sprint2/env      root-only (0600) secrets for systemd's EnvironmentFile and sprint2-run
  sprint2-app.service   gunicorn; journal + /var/log/django.log; deploy events in /var/log/backend.log

Setup and populate commands run from ONE backend (the first by name) while the others wait:
pyinfra finishes an operation on every host before the next starts. Whether they are needed is
recorded in the database (files/deploy_marker.py), not on a backend, so a new backend or a
redeploy never runs them again for the same commit (setup) or at all (populate). How a new commit
reaches the backends without a half-migrated database: tasks/app_release_ops.py.
"""

from io import StringIO

from pyinfra import host, inventory, state
from pyinfra.api import deploy
from pyinfra.facts.hardware import Cpus
from pyinfra.operations import files, server, systemd

from stack.render.backend import (LAYOUT, allowed_hosts, app_unit, deploy_settings, env_file, gunicorn_conf,
                                  gunicorn_workers, run_helper)
from stack.errors import UserError, exit_with
from stack.render.kong import UPSTREAM
from stack.secrets import deploy_secrets
from stack.settings import PROJECT_ROOT, Settings, load_settings
from tasks.app_ops import app_collectstatic, app_virtualenv, check_health, secret_file
from tasks.app_release_ops import app_checkout, app_fetch, app_populate, app_restart, app_setup, makes_migrations
from tasks.packages import packages_installed

# git for the checkout, python3-venv for the virtualenv (same names on Ubuntu 24.04 and Debian 12).
PACKAGES = ["git", "python3-venv", "ca-certificates"]


def db_private_ip() -> str:
    databases = inventory.get_group("db", [])
    if not databases:
        # e.g. after `destroy --only <prefix>-db`: say what to do rather than pyinfra's "No such group".
        exit_with(UserError("no database host is recorded: run python provision.py to create it, then deploy"))
    return databases[0].data.private_ip


def backend_label(backend) -> str:
    return backend.data.get("name") or backend.name


def setup_backend(backends: list):
    """The backend that runs migrations and populate: the first by name. Any backend can take the
    role (after a scale-in, a replaced host): the migration history `makemigrations` wrote is kept in
    the database and restored into its checkout before each setup (files/deploy_marker.py)."""
    return min(backends, key=backend_label)


@deploy("Configure the backend")
def deploy_backend(settings: Settings | None = None, secrets: dict | None = None):
    settings = settings or load_settings()
    secrets = secrets or deploy_secrets()
    layout = LAYOUT
    db_host = db_private_ip()

    packages_installed(name="Ensure git and Python's venv are installed", packages=PACKAGES)
    server.group(name="Ensure the app group exists", group=layout.user, system=True)
    server.user(
        name="Ensure the app user exists",
        user=layout.user, group=layout.user, system=True, home=layout.home, create_home=False,
        shell="/usr/sbin/nologin",
    )
    for path, owner, mode in ((layout.home, layout.user, "755"), (layout.conf_dir, "root", "755"),
                              (layout.static_root, layout.user, "755"), (layout.secrets_dir, "root", "700")):
        files.directory(name=f"Ensure {path} exists", path=path, user=owner, group=owner, mode=mode)
    for path, owner in ((layout.django_log, layout.user), (layout.deploy_log, "root")):
        files.file(name=f"Ensure {path} exists", path=path, user=owner, group="adm", mode="640")

    files.put(
        name="Install the helper that runs the app's commands", src=StringIO(run_helper(layout)),
        dest=layout.run_helper, user="root", group="root", mode="755",
    )
    files.put(
        name="Install the deploy-marker script", src=str(PROJECT_ROOT / "files" / "deploy_marker.py"),
        dest=layout.marker_script, user="root", group="root", mode="644",
    )
    environment = secret_file(
        name="Write the app's secrets to its root-only environment file",
        path=layout.env_file,
        content=env_file(db_host=db_host, db_password=secrets["db_password"],
                         secret_key=secrets["django_secret_key"], layout=layout),
    )
    django_settings = files.put(
        name="Write the deploy's Django settings module",
        src=StringIO(deploy_settings(
            db_host=db_host, db_name=settings.db_name, db_user=settings.db_user,
            hosts=allowed_hosts(host.data.private_ip, host.data.get("ssh_hostname"), UPSTREAM), layout=layout)),
        dest=layout.settings_path, user="root", group="root", mode="644",
    )
    gunicorn = files.put(
        name="Write gunicorn's config",
        src=StringIO(gunicorn_conf(port=settings.app_port, workers=gunicorn_workers(host.get_fact(Cpus)),
                                   layout=layout)),
        dest=layout.gunicorn_conf, user="root", group="root", mode="644",
    )

    backends = inventory.get_group("backends")
    reached = {backend for backend in state.activated_hosts if state.is_host_in_limit(backend)}
    first = setup_backend(backends)
    is_setup = first.name == host.name
    fetched = app_fetch(
        name=f"Fetch {settings.app_ref} of the app" + (" and try its migrations" if is_setup else ""),
        repo=settings.app_repo, ref=settings.app_ref, layout=layout,
        preflight=[command for command in settings.app_setup_commands if makes_migrations(command)]
        if is_setup else None,
        allow_destructive=settings.allow_destructive_migrations,
    )
    code = app_checkout(name=f"Check out {settings.app_ref} of the app", repo=settings.app_repo,
                        ref=settings.app_ref, layout=layout, setup_host=first,
                        setup_reached=first in reached or not reached)
    venv = app_virtualenv(name="Install the app's requirements in its virtualenv", layout=layout)
    app_collectstatic(name="Collect the app's static files", layout=layout)
    if is_setup:
        app_setup(name="Run the app's setup commands (migrations) from this backend only",
                  commands=list(settings.app_setup_commands), layout=layout,
                  allow_destructive=settings.allow_destructive_migrations)
        app_populate(name="Populate the database, each command once in its life",
                     commands=list(settings.app_populate_commands), layout=layout)

    unit = files.put(
        name="Install the app's systemd unit", src=StringIO(app_unit(port=settings.app_port, layout=layout)),
        dest=layout.unit_path, user="root", group="root", mode="644",
    )
    systemd.daemon_reload(name="Reload systemd for the app's unit", _if=unit.did_change)
    app_restart(
        name="Restart the app for its new code, dependencies or settings",
        changes=[fetched, code, venv, environment, django_settings, gunicorn, unit], layout=layout,
    )
    systemd.service(
        name="Ensure the app is running and starts at boot",
        service=layout.service, running=True, enabled=True,
    )
    statuses = list(settings.gateway.active.healthy_statuses)
    check_health(
        name=f"Check that {settings.gateway.health_path} answers {' or '.join(map(str, statuses))}",
        address=host.data.private_ip, port=settings.app_port, path=settings.gateway.health_path,
        backend=host.data.get("name") or host.name, statuses=statuses,
    )
