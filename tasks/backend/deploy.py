"""The backends: the Django application under systemd with gunicorn.

Defaults (tasks/backend/settings.py): app_repo (Sprint2 on GitHub), app_ref b0abfcb (its newest
commit that works), app_port 8080, app_setup_commands (makemigrations, migrate, both --noinput),
app_populate_commands (populate.py, populateDespachos.py), allow_destructive_migrations (false),
gateway.health_path and gateway.active.healthy_statuses. Layout on the host (tasks/backend/layout.py):

  /srv/sprint2                     root's (0755): the app user `sprint2` owns only what it writes below
  /srv/sprint2/repo.git            a mirror of app_repo (the app user's; git runs in it as that user only)
  /srv/sprint2/releases/<commit>   one release per commit: its tree (never edited by the deploy),
                                   .venv (-> /srv/sprint2/venvs/<lock>), .static
  /etc/sprint2/locks/<lock>.txt    root's copy of each lock a virtualenv was built from (tasks/backend/lock.py)
  /srv/sprint2/current             -> the live release (root's link)
  /srv/sprint2/venvs, .cache, .gunicorn  the app user's: virtualenvs (named by their lock), uv's cache,
                                   gunicorn's control socket
  /etc/sprint2/conf                root's (0755): the deploy's settings module (imports provesi.settings),
                                   gunicorn.conf.py, deploy_marker.py
  /etc/sprint2/env                 root-only (0600) secrets for systemd's EnvironmentFile and sprint2-run
  sprint2-app.socket / .service    the port, held by systemd; gunicorn in the release `current` named
                                   when it started; journal + /var/log/django.log; deploy events in
                                   /var/log/backend.log

Setup and populate commands run from ONE backend (the first by name) while the others wait:
pyinfra finishes an operation on every host before the next starts. Whether they are needed is
recorded in the database (files/backend/deploy_marker.py), not on a backend, so a new backend or a
redeploy never runs them again for the same commit (setup) or at all (populate). How a new commit
reaches the backends, one batch at a time with the service up: tasks/backend/setup.py and switch.py.
"""

from io import StringIO
from typing import Any

from pyinfra import host, inventory, state
from pyinfra.api import deploy
from pyinfra.context import ctx_host
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed

from stack.errors import UserError, exit_with
from stack.secrets import deploy_secrets
from stack.settings import PROJECT_ROOT, Settings, load_settings
from tasks import uploads
from tasks.backend.account import system_group, system_user
from tasks.backend.drain import drain_batch, restore_batch
from tasks.backend.facts import AppFileText, BuiltReleases, ServiceRelease
from tasks.backend.layout import LAYOUT
from tasks.backend.operations import (
    app_build,
    app_fetch,
    app_lock,
    app_prune,
    check_health,
    secret_file,
)
from tasks.backend.render import (
    allowed_hosts,
    app_socket,
    app_unit,
    deploy_settings,
    env_file,
    gunicorn_conf,
    run_helper,
)
from tasks.backend.setup import app_populate, app_setup, history_login
from tasks.backend.switch import app_switch, app_trial
from tasks.packages import packages_installed
from tasks.paths import paths_exist, wanted
from tasks.rds.deploy import database_roles, deploy_database_files
from tasks.rds.render import master_login, tls_options
from tasks.shared import HISTORY_ROLE, UPSTREAM, database_endpoint, managed_database
from tasks.units import units_running

# git for the checkout (same names on Ubuntu 24.04 and Debian 12), python3-psycopg2 for root's own
# connection to the migration history (never the app's venv). No python3-venv: uv makes the
# virtualenvs (tasks/backend/lock.py); its pip fallback installs python3-venv when it needs it.
PACKAGES = ["git", "ca-certificates", "python3-psycopg2"]
RDS_PACKAGES = ["postgresql-client"]
# The end of the releases' history read for a rollback: ~60 bytes a switch, the last ~1000 switches.
HISTORY_BYTES = 65536
# What of the switch's arguments the trial before it takes.
TRIAL_ARGUMENTS = ("repo", "ref", "layout", "commit", "require_setup")


def backend_label(backend) -> str:
    return backend.data.get("name") or backend.name


def setup_backend(backends: list):
    """The backend that runs migrations and populate: the first by name. Any backend can take the
    role (after a scale-in, a replaced host): the migration history `makemigrations` wrote is kept in
    the database and restored into its checkout before each setup (files/backend/deploy_marker.py)."""
    return min(backends, key=backend_label)


def batches(backends: list, size: int) -> list[list]:
    """The backends in switch order (the setup backend first), `size` at a time."""
    ordered = sorted(backends, key=backend_label)
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def roll_out(settings: Settings, backends: list, title: str, trying: str, **switch) -> None:
    """The release tried on every backend at once (`trying` names it), then one switch operation
    per batch: pyinfra finishes each on every host before the next starts, so the batches go one
    after another, each waiting for its backends to answer healthy."""
    groups = batches(backends, settings.switch_batch_size)
    if "backends" in host.groups:
        trial = {key: value for key, value in switch.items() if key in TRIAL_ARGUMENTS}
        app_trial(
            name=f"Try {trying} beside the running one, on every backend at once",
            backends=backends,
            port=settings.app_port,
            path=settings.gateway.health_path,
            statuses=list(settings.gateway.active.healthy_statuses),
            **trial,
        )
    for number, batch in enumerate(groups, start=1):
        names = ", ".join(backend_label(backend) for backend in batch)
        # Kong nodes run this loop too (deploy.py), only for the drain around each batch's switch.
        drain = drain_batch(settings, batch, f"batch {number} of {len(groups)} ({names})", switch)
        if "backends" in host.groups:
            app_switch(
                name=f"{title}, batch {number} of {len(groups)} ({names})",
                batch=batch,
                backends=backends,
                address=host.data.private_ip,
                port=settings.app_port,
                path=settings.gateway.health_path,
                statuses=list(settings.gateway.active.healthy_statuses),
                **switch,
            )
        restore_batch(settings, f"batch {number} of {len(groups)} ({names})", drain)


def rollback_target(release: str | None, layout) -> str:
    """The commit to roll back to: `release` (a commit, abbreviated or not) among the built
    releases, else the newest release this backend served before its current one."""
    built = host.get_fact(BuiltReleases, releases=layout.releases)
    serving = host.get_fact(ServiceRelease, current=layout.current, service=layout.service)
    current = (serving["current"] or "").rsplit("/", 1)[-1]
    if release:
        matches = [commit for commit in built if commit.startswith(release)]
        if len(matches) != 1:
            exit_with(
                UserError(
                    f"{host.name}: release {release!r} is not one of the releases kept here "
                    f"({', '.join(commit[:12] for commit in built) or 'none'})"
                )
            )
        return matches[0]
    history = host.get_fact(AppFileText, path=layout.history, limit=HISTORY_BYTES, end=True) or ""
    # Only names among `built` (full commit ids) are ever used; read as the app user, its newest lines.
    served = [line.split()[-1] for line in history.splitlines() if line.strip()]
    for commit in reversed(served):
        if commit != current and commit in built:
            return commit
    exit_with(
        UserError(
            f"{host.name}: no earlier release to roll back to (kept: "
            f"{', '.join(commit[:12] for commit in built) or 'none'}); name one with --data release=COMMIT"
        )
    )


@deploy("Roll the backend back")
def rollback_backend(release: str | None = None, settings: Settings | None = None):
    """A Kong node comes here too (rollback.py): only the drain around each batch's switch, each
    backend drained when the release it goes back to is not the one it runs."""
    settings = settings or load_settings()
    layout = LAYOUT
    if "backends" in host.groups:
        commit = rollback_target(release, layout)
        switch: dict[str, Any] = {"ref": commit[:12], "commit": commit, "require_setup": False}
    else:
        switch = {"ref": "", "commit": None, "commit_of": lambda backend: backend_rollback_target(backend, release)}
    roll_out(
        settings,
        inventory.get_group("backends"),
        title="Switch back to an earlier release",
        trying="the earlier release",
        repo=settings.app_repo,
        changes=[],
        layout=layout,
        **switch,
    )


def backend_rollback_target(backend, release: str | None) -> str | None:
    """What `backend` rolls back to, read from it as its own rollback_target does (None when it has
    nothing to go back to: it then stops its own run, and nothing is drained)."""
    with ctx_host.use(backend):
        try:
            return rollback_target(release, LAYOUT)
        except SystemExit:
            return None


@deploy("Configure the backend")
def deploy_backend(settings: Settings | None = None, secrets: dict | None = None):
    """A Kong node comes here too (deploy.py): it runs only the drain around each batch's switch,
    the same operations as the backends' (called from the same lines), in their order."""
    settings = settings or load_settings()
    backends = inventory.get_group("backends")
    if "backends" in host.groups:
        switch = _converge(settings, secrets or deploy_secrets())
    else:
        switch = {"repo": settings.app_repo, "ref": settings.app_ref, "layout": LAYOUT, "changes": []}
    roll_out(
        settings,
        backends,
        title=f"Switch to the release of {settings.app_ref}",
        trying=f"the release of {settings.app_ref}",
        **switch,
    )
    if "backends" in host.groups:
        _serve(settings, LAYOUT)


def _converge(settings: Settings, secrets: dict) -> dict:
    """Everything a backend needs before its switch; returns the switch's arguments."""
    layout = LAYOUT
    db_host, db_port = database_endpoint()
    database = managed_database()  # db_service rds: its record; None with the db host
    tls = tls_options(layout) if database else None

    packages_installed(
        name="Ensure git, CA certificates and psycopg2 are installed",
        # A managed database: psql and pg_dump for provision.py psql/backup and the deploy lock.
        packages=PACKAGES + (RDS_PACKAGES if database else []),
    )
    system_group(name="Ensure the app group exists", group=layout.user)
    system_user(name="Ensure the app user exists", user=layout.user, home=layout.home, shell="/usr/sbin/nologin")
    paths_exist(
        name="Ensure the app's folders and log files exist",
        # Root's folders first: on a host deployed before issue 18 the home is the app user's until
        # this chown, and the app's folders are then made in a folder only root can change.
        paths=[
            wanted(layout.home, "directory", "root", "root", "755"),
            wanted(layout.config_root, "directory", "root", "root", "755"),
            wanted(layout.conf_dir, "directory", "root", "root", "755"),
            *(wanted(path, "directory", layout.user, layout.user, "700") for path in layout.cache),
            *(wanted(path, "directory", layout.user, layout.user, "755") for path in layout.app_dirs),
            wanted(layout.django_log, "file", layout.user, "adm", "640"),
            wanted(layout.deploy_log, "file", "root", "adm", "640"),
        ],
    )
    # Every file below goes into a root-owned folder that exists by now (the conf folder just above,
    # or /usr/local/sbin and /etc/systemd/system of the OS): create_remote_dir=False spares a check
    # each. None is in a folder the app user can change: pyinfra's upload, chown and chmod follow links.

    uploads.put(
        name="Install the helper that runs the app's commands",
        src=StringIO(run_helper(layout)),
        dest=layout.run_helper,
        user="root",
        group="root",
        mode="755",
        create_remote_dir=False,
    )
    uploads.put(
        name="Install the deploy-marker script",
        src=str(PROJECT_ROOT / "files" / "backend" / "deploy_marker.py"),
        dest=layout.marker_script,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )
    if database:
        deploy_database_files(database, layout)
    environment = secret_file(
        name="Write the app's secrets to its root-only environment file",
        path=layout.env_file,
        content=env_file(
            db_host=db_host, db_password=secrets["db_password"], secret_key=secrets["django_secret_key"], layout=layout
        ),
    )
    django_settings = uploads.put(
        name="Write the deploy's Django settings module",
        src=StringIO(
            deploy_settings(
                db_host=db_host,
                db_name=settings.db_name,
                db_user=settings.db_user,
                hosts=allowed_hosts(host.data.private_ip, host.data.get("ssh_hostname"), UPSTREAM),
                layout=layout,
                db_port=db_port,
                tls=tls,
            )
        ),
        dest=layout.settings_path,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )
    gunicorn = uploads.put(
        name="Write gunicorn's config",
        src=StringIO(gunicorn_conf(port=settings.app_port, path=settings.gateway.health_path, layout=layout)),
        dest=layout.gunicorn_conf,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )

    unit = uploads.put(
        name="Install the app's systemd unit",
        src=StringIO(app_unit(layout=layout)),
        dest=layout.unit_path,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )
    socket = uploads.put(
        name="Install the app's systemd socket",
        src=StringIO(app_socket(port=settings.app_port, layout=layout)),
        dest=layout.socket_path,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )
    systemd.daemon_reload(name="Reload systemd for the app's units", _if=any_changed(unit, socket))
    server.shell(
        name="Restart the app's socket for its new port",
        # Only a socket that runs: a backend deployed before the socket has gunicorn on the port,
        # and its first switch starts the socket in its place.
        commands=[
            f"if systemctl is-active --quiet {layout.service}.socket; then "
            f"systemctl restart {layout.service}.socket; fi"
        ],
        _if=socket.did_change,
    )

    backends = inventory.get_group("backends")
    first = setup_backend(backends)
    release: dict[str, Any] = {"repo": settings.app_repo, "ref": settings.app_ref, "layout": layout}
    app_fetch(name=f"Fetch {settings.app_ref} of the app", **release)
    app_lock(name=f"Lock the requirements of {settings.app_ref}, once, on one backend", **release)
    app_build(name=f"Build the release of {settings.app_ref} beside the running one", **release)
    if first.name == host.name:
        if database:
            database_roles(
                name="Ensure the app's role and database exist on the managed database (master user, setup only)",
                login=master_login(
                    database,
                    layout,
                    master_password=secrets["rds_master_password"],
                    db_name=settings.db_name,
                    db_user=settings.db_user,
                    db_password=secrets["db_password"],
                    history_role=HISTORY_ROLE,
                    history_password=secrets["db_history_password"],
                ),
                **release,
            )
        app_setup(
            name="Set the database up for the new release, from this backend only",
            commands=list(settings.app_setup_commands),
            allow_destructive=settings.allow_destructive_migrations,
            history=history_login(db_host, settings.db_name, secrets["db_history_password"], db_port, tls),
            **release,
        )
        app_populate(
            name="Populate the database, each command once in its life",
            commands=list(settings.app_populate_commands),
            **release,
        )
    reached = {backend for backend in state.activated_hosts if state.is_host_in_limit(backend)}
    return {
        "changes": [environment, django_settings, gunicorn, unit, socket],
        "setup_left_out": backend_label(first) if reached and first not in reached else None,
        **release,
    }


def _serve(settings: Settings, layout) -> None:
    """After the switch: the units run, old releases go, the health path answers."""
    units_running(
        name="Ensure the app and its socket run and start at boot",
        units=[f"{layout.service}.socket", f"{layout.service}.service"],
    )
    app_prune(name=f"Keep the newest {settings.releases_keep} releases", keep=settings.releases_keep, layout=layout)
    statuses = list(settings.gateway.active.healthy_statuses)
    check_health(
        name=f"Check that {settings.gateway.health_path} answers {' or '.join(map(str, statuses))}",
        address=host.data.private_ip,
        port=settings.app_port,
        path=settings.gateway.health_path,
        backend=host.data.get("name") or host.name,
        statuses=statuses,
    )
