"""The backends' files, by exact output."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tasks.backend.layout import LAYOUT, Layout
from tasks.backend.render import (
    allowed_hosts,
    app_socket,
    app_unit,
    deploy_settings,
    env_file,
    extra_requirements,
    gunicorn_conf,
    requirements_key,
    run_helper,
)


def test_deploy_settings_import_the_apps_and_override_what_production_needs():
    text = deploy_settings(
        db_host="10.0.1.10",
        db_name="dispatch_db",
        db_user="dispatch_user",
        hosts=allowed_hosts("10.0.1.11", "3.80.1.11", "backend-cluster"),
    )
    assert (
        text
        == '''\
"""Managed by the deploy (tasks/backend/): the application's settings with production overrides.

The application's own settings are imported unchanged (the deploy never edits its tracked files).
Secrets come from the environment (/etc/sprint2/env, read by systemd), never from this file.
"""
import os
from pathlib import Path

from provesi.settings import *  # noqa: F401,F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
# This backend's addresses (Kong probes and proxies to the private one) and local checks.
ALLOWED_HOSTS = ['10.0.1.11', '3.80.1.11', 'backend-cluster', 'localhost', '127.0.0.1']

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "dispatch_db",
        "USER": "dispatch_user",
        "PASSWORD": os.environ["DATABASE_PASSWORD"],
        "HOST": "10.0.1.10",
        "PORT": "5432",
        # A new connection per request: nothing to go stale when PostgreSQL restarts.
        "CONN_MAX_AGE": 0,
    }
}

# Collected by `manage.py collectstatic` and served by whitenoise from gunicorn itself.
# Per release: beside the release's own tree (the package's folder, resolved through `current`).
STATIC_ROOT = str(Path(__import__("provesi").__file__).resolve().parent.parent / ".static")
_WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"
if _WHITENOISE not in MIDDLEWARE:
    # Right after SecurityMiddleware, where whitenoise's documentation puts it.
    MIDDLEWARE = [*MIDDLEWARE[:1], _WHITENOISE, *MIDDLEWARE[1:]]
'''
    )
    compile(text, "sprint2_deploy_settings.py", "exec")


def test_allowed_hosts_do_not_repeat_an_address():
    assert allowed_hosts("10.77.0.20", "10.77.0.20", "up") == ["10.77.0.20", "up", "localhost", "127.0.0.1"]
    assert allowed_hosts("10.0.1.11", None, "up") == ["10.0.1.11", "up", "localhost", "127.0.0.1"]


def test_env_file_holds_the_secrets_and_the_settings_module():
    assert (
        env_file(db_host="10.0.1.10", db_password="pw-0123456789abcdef", secret_key="key-0123456789")
        == """\
# Managed by the deploy (tasks/backend/). Root-only (0600): read by systemd for sprint2-app
# and by /usr/local/sbin/sprint2-run; the processes get the values in their environment, never in argv.
DJANGO_SETTINGS_MODULE=sprint2_deploy_settings
PYTHONPATH=/etc/sprint2/conf
DATABASE_HOST=10.0.1.10
DATABASE_PASSWORD=pw-0123456789abcdef
DJANGO_SECRET_KEY=key-0123456789
"""
    )


def test_gunicorn_workers_follow_the_cpus_it_may_run_on_when_it_starts(monkeypatch):
    text = gunicorn_conf(port=8080)
    for cpus, workers in ((1, 3), (2, 5), (4, 9)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, cpus=cpus: set(range(cpus)))
        namespace: dict = {}
        exec(compile(text, "gunicorn.conf.py", "exec"), namespace)
        assert namespace["workers"] == workers


def test_gunicorn_conf_binds_the_port_and_logs_to_journal_and_file():
    text = gunicorn_conf(port=8080)
    assert 'bind = "0.0.0.0:8080"' in text
    namespace = {}
    exec(compile(text, "gunicorn.conf.py", "exec"), namespace)
    handlers = namespace["logconfig_dict"]["handlers"]
    assert handlers["file"]["filename"] == "/var/log/django.log" and handlers["file"]["mode"] == "a"
    assert handlers["journal"]["stream"] == "ext://sys.stderr"
    for logger in ("gunicorn.error", "gunicorn.access"):
        assert namespace["logconfig_dict"]["loggers"][logger]["handlers"] == ["journal", "file"]


def test_unit_runs_the_current_release_behind_its_socket_and_reads_secrets_from_the_env_file():
    assert (
        app_unit()
        == """\
# Managed by the deploy (tasks/backend/).
[Unit]
Description=Sprint2 Django application (gunicorn, on sprint2-app.socket)
Requires=sprint2-app.socket
After=network-online.target sprint2-app.socket
Wants=network-online.target
# Keep restarting however often it dies (the default gives up after 5 starts in 10 s).
StartLimitIntervalSec=0

[Service]
Type=notify
# all: after a re-exec (USR2) the new gunicorn master, a child of the old one, names itself the
# main process (MAINPID=) before the old one stops.
NotifyAccess=all
User=sprint2
Group=sprint2
# Root-only file, read by systemd before it drops to sprint2: the secrets never appear in argv.
EnvironmentFile=/etc/sprint2/env
# systemd resolves the link when the service starts: gunicorn runs the release `current` named
# then (its working directory shows which), whatever the link says later.
WorkingDirectory=/srv/sprint2/current
ExecStart=/srv/sprint2/current/.venv/bin/gunicorn --config /etc/sprint2/conf/gunicorn.conf.py provesi.wsgi:application
ExecReload=/bin/kill -HUP $MAINPID
# The stop TERMs the master and waits until it is gone (its workers finish first): after a
# re-exec the master is one systemd did not start (named by its notify), and systemd 257 on a
# cgroup-v1 machine SIGKILLed it at once, then waited 30 s for a cgroup it could not see empty
# ("failed"; measured on Debian 13 hosts).
ExecStop=/bin/sh -c 'kill -TERM $MAINPID; while kill -0 $MAINPID 2>/dev/null; do sleep 0.1; done'
# TERM to the master only: it stops accepting and lets its workers finish their requests.
KillMode=mixed
# A crashed or killed master is back within a couple of seconds.
Restart=always
RestartSec=1
TimeoutStopSec=30
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=full

[Install]
WantedBy=multi-user.target
"""
    )


def test_the_socket_holds_the_port_so_a_restart_refuses_no_connection():
    assert (
        app_socket(port=8080)
        == """\
# Managed by the deploy (tasks/backend/).
[Unit]
Description=Sprint2 Django application's port 8080

[Socket]
# systemd holds the listening socket, so a restart of sprint2-app.service (a new release, new
# settings) refuses no connection: they wait in the queue until the new gunicorn accepts them.
ListenStream=0.0.0.0:8080
Backlog=4096
NoDelay=true

[Install]
WantedBy=sockets.target
"""
    )


def test_gunicorn_does_not_reuse_the_port():
    namespace = {}
    exec(compile(gunicorn_conf(port=8080), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["reuse_port"] is False


def test_requirements_key_names_one_virtualenv_per_requirements():
    assert requirements_key("Django==4.2\n") == requirements_key("Django==4.2\n")
    assert requirements_key("Django==4.2\n") != requirements_key("Django==4.2\nrequests\n")
    assert len(requirements_key("")) == 16


def test_run_helper_is_valid_shell_and_loads_the_env_file_before_dropping_to_the_app_user():
    text = run_helper()
    assert subprocess.run(["sh", "-n"], input=text, text=True).returncode == 0
    assert text.index(". /etc/sprint2/env") < text.index("runuser -u sprint2")
    assert "PATH=$2/.venv/bin:$PATH" in text and 'tree=$(readlink -f -- "$tree")' in text
    assert ">> /var/log/backend.log" in text
    # Root changes only into `/`; the release is entered by the command, as the app user.
    assert [line.strip() for line in text.splitlines() if line.strip().startswith("cd ")] == ["cd /"]


@pytest.fixture
def helper_here():
    """The rendered helper with its layout in a temporary folder and `nobody` as the app user, run
    here as root (as the deploy runs it): (layout, a release, a run(*args) -> CompletedProcess).
    Not pytest's tmp_path: its parents are root-only, and `nobody` must reach the release."""
    base = Path(tempfile.mkdtemp(prefix="sprint2-run-"))
    try:
        base.chmod(0o755)
        yield _helper_in(base)
    finally:
        shutil.rmtree(base)


def _helper_in(base: Path):
    layout = Layout(user="nobody", home=str(base / "srv"), config_root=str(base / "etc"), deploy_log=str(base / "log"))
    release = Path(layout.release("a" * 40))
    (release / ".venv" / "bin").mkdir(parents=True)
    for folder in (base / "srv", Path(layout.releases), release, release / ".venv", release / ".venv" / "bin"):
        folder.chmod(0o755)
    Path(layout.config_root).mkdir(mode=0o755)
    Path(layout.env_file).write_text("SECRET=from-the-env-file\n")
    Path(layout.env_file).chmod(0o600)
    Path(layout.current).symlink_to(release)
    helper = base / "sprint2-run"
    helper.write_text(run_helper(layout))

    def run(*args):
        # Started from inside the release: the helper must not stay there as root either.
        return subprocess.run(["sh", str(helper), *args], cwd=release, capture_output=True, text=True, timeout=30)

    return layout, release, run


def test_run_helper_enters_the_release_only_as_the_app_user_and_refuses_what_is_not_a_release(helper_here):
    if os.geteuid() != 0:
        pytest.fail("needs root, as the deploy runs the helper (runuser)")
    layout, release, run = helper_here
    done = run("--quiet", 'id -un; pwd -P; echo "$SECRET"; echo "$PYTHONPATH"')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ["nobody", str(release), "from-the-env-file", f"{layout.conf_dir}:{release}"], lines
    # A link planted in place of a release, to a folder only root may enter: refused, nothing run.
    private = Path(layout.releases).parent / "private"
    private.mkdir(mode=0o700)
    (Path(layout.releases) / "planted").symlink_to(private)
    refused = run("--quiet", "--in", f"{layout.releases}/planted", "pwd -P")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == f"{private} is not a release of {layout.releases}\n"
    # A release the app user cannot enter fails in the command (as that user), not before.
    release.chmod(0o700)
    failed = run("--quiet", "pwd -P")
    assert failed.returncode != 0 and failed.stdout == "", failed


def test_layout_keeps_the_deploys_files_outside_the_checkout():
    assert not LAYOUT.settings_path.startswith(LAYOUT.releases + "/")
    assert not LAYOUT.env_file.startswith(LAYOUT.home)


def test_extra_requirements_add_only_what_the_app_lacks():
    assert extra_requirements("Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise\n") == ["gunicorn"]
    assert extra_requirements("gunicorn>=21  # server\nPsycopg2==2.9\nWhiteNoise==6.7\n") == []
    assert extra_requirements("psycopg[binary]\nwhitenoise\n") == ["gunicorn"]
    assert extra_requirements("# gunicorn\n") == ["gunicorn", "psycopg2-binary", "whitenoise"]
    # Sprint2 d1addfe: Django only
    assert extra_requirements("asgiref==3.9.2\nDjango==4.2.25\nsqlparse==0.5.3\n") == [
        "gunicorn",
        "psycopg2-binary",
        "whitenoise",
    ]


def test_the_reexecd_master_starts_from_the_current_link_with_systemds_socket_at_fd_3(tmp_path):
    """gunicorn.conf's pre_exec (USR2): the new master's python and gunicorn from the virtualenv the
    `current` link names now (resolved), in that release, and the listening socket back at fd 3,
    inherited, where the new master looks for it (LISTEN_FDS). Run in a child: it moves fd 3."""
    import subprocess
    import sys

    layout = Layout(home=str(tmp_path))
    (tmp_path / "venvs" / "k" / "bin").mkdir(parents=True)
    (tmp_path / "releases" / "c").mkdir(parents=True)
    (tmp_path / "releases" / "c" / ".venv").symlink_to(tmp_path / "venvs" / "k")
    (tmp_path / "current").symlink_to(tmp_path / "releases" / "c")
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(gunicorn_conf(port=8080, path="/health-check/", layout=layout))
    child = (
        "import os, socket, stat, sys, types\n"
        "namespace = {}\n"
        "exec(compile(open(sys.argv[1]).read(), 'gunicorn.conf.py', 'exec'), namespace)\n"
        "listener = socket.socket()\n"
        "listener.bind(('127.0.0.1', 0)); listener.listen(1)\n"
        "os.dup2(listener.fileno(), 9); os.close(3) if listener.fileno() != 3 else None\n"
        "server = types.SimpleNamespace(systemd=True, LISTENERS=[listener],\n"
        "    START_CTX={0: '/old/bin/python', 'args': ['/old/bin/python', '/old/bin/gunicorn', '-c', 'x'], 'cwd': '/old'})\n"
        "namespace['pre_exec'](server)\n"
        "print(server.START_CTX[0], server.START_CTX['args'][:2], server.START_CTX['cwd'])\n"
        "print(stat.S_ISSOCK(os.fstat(3).st_mode), os.get_inheritable(3))\n"
    )
    out = subprocess.run([sys.executable, "-c", child, str(conf)], capture_output=True, text=True, check=True).stdout
    venv = tmp_path / "venvs" / "k"
    assert out.splitlines() == [
        f"{venv}/bin/python ['{venv}/bin/python', '{venv}/bin/gunicorn'] {tmp_path}/current",
        "True True",
    ]
