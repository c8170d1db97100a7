"""deploy_backend and rollback_backend on a fake host: a fresh backend, a converged one, a new
commit built beside the running release and switched batch by batch, changed settings, a stale
running release, a release the database is not set up for, the roll stopped, a rollback, pruning."""

import hashlib
import json
import re
import shlex
import types

import pytest
from pyinfra.api import deploy as deploy_function
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Which

from stack.settings import PROJECT_ROOT, settings_from
from tasks.backend.commands import HEALTH_PROBE, ROOT_SCRIPT, populate_marker
from tasks.backend.deploy import batches, deploy_backend, rollback_backend
from tasks.backend.facts import (
    AppFileText,
    BuiltReleases,
    CommitFile,
    DeployMarkers,
    Directories,
    GitRemoteRef,
    HttpStatus,
    MirrorCommit,
    ServiceRelease,
    SystemAccount,
    VenvWorks,
)
from tasks.backend.layout import LAYOUT
from tasks.backend.lock import (
    CONSTRAINTS,
    digest,
    keep_lock,
    kept_lock,
    lock_input,
    resolve,
    uv_installed,
    venv_built,
)
from tasks.backend.logs import deploy_log_rotation
from tasks.backend.operations import NOT_FOUND_HINT, wrapped_lock
from tasks.backend.render import (
    LOGROTATE_PATH,
    allowed_hosts,
    app_logrotate,
    app_socket,
    app_unit,
    deploy_settings,
    env_file,
    gunicorn_conf,
    run_helper,
)
from tasks.backend.setup import HISTORY, HISTORY_MARKER
from tasks.backend.switch import go_live
from tasks.paths import PathStates
from tasks.shared import UPSTREAM
from tasks.units import UnitStates
from tasks.uploads import FileSummaries, FileSummary
from tests.harness import ByOperation, file_summaries, per_path, run_deploy

SECRETS = {
    "db_password": "correct-horse-battery-staple",
    "django_secret_key": "s" * 48,
    "db_history_password": "history-horse-battery-staple",
}
ME = {"private_ip": "10.0.1.11", "name": "des-backend-a", "ssh_hostname": "3.80.1.11"}
OTHERS = {
    "db": [("des-db", {"private_ip": "10.0.1.10"})],
    "backends": [("des-backend-b", {"private_ip": "10.0.1.12", "name": "des-backend-b"})],
}
REPO = "https://github.com/mr-torres-d-ojedas/Sprint2.git"
OLD, NEW = "a" * 40, "b" * 40
REQUIREMENTS = "Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise\n"
# The lock the controller keeps for each commit of these tests (tasks/backend/lock.py).
LOCK = "django==4.2.25 \\\n    --hash=sha256:" + "1" * 64 + "\n"
VENV = f"/srv/sprint2/venvs/{digest(LOCK)}"
COPY = f"/etc/sprint2/locks/{digest(LOCK)}.txt"
LEGACY = f"paths={list(LAYOUT.legacy)!r}"
APP_DIRS = ["/srv/sprint2/repo.git", "/srv/sprint2/releases", "/srv/sprint2/venvs"]
CACHE = ["/srv/sprint2/.cache", "/srv/sprint2/.gunicorn"]
ROOT_DIRS = ["/srv/sprint2", "/etc/sprint2", "/etc/sprint2/conf"]
APP_PATHS = f"paths={[*ROOT_DIRS, *CACHE, *APP_DIRS, LAYOUT.django_log, LAYOUT.deploy_log]!r}"
APP_PATH_STATES = {
    **{path: {"type": "directory", "user": "root", "group": "root", "mode": 755} for path in ROOT_DIRS},
    **{path: {"type": "directory", "user": LAYOUT.user, "group": LAYOUT.user, "mode": 700} for path in CACHE},
    **{path: {"type": "directory", "user": LAYOUT.user, "group": LAYOUT.user, "mode": 755} for path in APP_DIRS},
    LAYOUT.django_log: {"type": "regular file", "user": LAYOUT.user, "group": "adm", "mode": 640},
    LAYOUT.deploy_log: {"type": "regular empty file", "user": "root", "group": "adm", "mode": 640},
}
APP_UNITS = "units=['sprint2-app.socket', 'sprint2-app.service']"
PARENTS = ["/usr/local/sbin", "/etc/systemd/system", "/var/log", "/etc"]

FETCH = "Fetch main of the app"
LOCK_OP = "Lock the requirements of main, once, on one backend"
BUILD = "Build the release of main beside the running one"
SETUP = "Set the database up for the new release, from this backend only"
POPULATE = "Populate the database, each command once in its life"
TRIAL = "Try the release of main beside the running one, on every backend at once"
SWITCH_A = "Switch to the release of main, batch 1 of 2 (des-backend-a)"
SWITCH_B = "Switch to the release of main, batch 2 of 2 (des-backend-b)"
PRUNE = "Keep the newest 3 releases"
HEALTH = "Check that /despachos/reporte/ answers 200 or 302"
RUN = "/usr/local/sbin/sprint2-run"
MARKER = "python /etc/sprint2/conf/deploy_marker.py"
APP = "runuser -u sprint2 --"
# What the operations before each step see: the host as the earlier steps leave it.
BEFORE_ACCOUNT = ("app group", "app user")
ACCOUNT = {"uid": 998, "gid": 998, "home": LAYOUT.home, "shell": "/usr/sbin/nologin"}
BEFORE_FETCH, BEFORE_BUILD = ("Fetch",), ("Fetch", "Build")
BEFORE_SETUP = ("Fetch", "Build", "managed database", "Set the database up")
BEFORE_SWITCH = BEFORE_SETUP + ("Try", "Switch")


def gateway(name: str) -> bool:
    """The Kong nodes' drain around a batch's switch (nothing on a backend)."""
    return name.startswith(("Stop Kong sending new requests to ", "Let Kong send requests to "))


@pytest.fixture(autouse=True)
def kept_locks(tmp_path, monkeypatch):
    """A controller that keeps the lock of both commits (as after their first deploy)."""
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "deploy"))
    for commit in (OLD, NEW):
        keep_lock(commit, LOCK)


def base(values=None):
    """The default settings on the branch `main` (the harness's remote answers for `main`)."""
    return settings_from({"app_ref": "main", **(values or {})})


def release(commit):
    return f"/srv/sprint2/releases/{commit}"


# db_service rds: the database's record (stack/database.py) as the inventory gives it to the host.
DATABASE = {
    "service": "rds",
    "identifier": "des-rds",
    "address": "10.0.1.9",
    "port": 5432,
    "master_user": "sprint2admin",
    "ca_bundle_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}
CA_BUNDLE, ROLES_SCRIPT = "/etc/sprint2/database-ca.pem", "/etc/sprint2/conf/rds_roles.py"


def db_address(settings) -> str:
    return DATABASE["address"] if settings.db_service == "rds" else "10.0.1.10"


def managed_files(settings):
    """Every file the deploy uploads, with its text and mode, for a converged host."""
    rds = settings.db_service == "rds"
    managed = {
        CA_BUNDLE: (DATABASE["ca_bundle_pem"], 644),
        ROLES_SCRIPT: ((PROJECT_ROOT / "files" / "backend" / "rds_roles.py").read_text(), 644),
    }
    return {
        **(managed if rds else {}),
        LAYOUT.run_helper: (run_helper(), 755),
        LAYOUT.marker_script: ((PROJECT_ROOT / "files" / "backend" / "deploy_marker.py").read_text(), 644),
        LAYOUT.settings_path: (
            deploy_settings(
                db_host=db_address(settings),
                db_name="dispatch_db",
                db_user="dispatch_user",
                hosts=allowed_hosts("10.0.1.11", "3.80.1.11", UPSTREAM),
                tls={"sslmode": "verify-full", "sslrootcert": CA_BUNDLE} if rds else None,
            ),
            644,
        ),
        LAYOUT.gunicorn_conf: (gunicorn_conf(port=settings.app_port, path=settings.gateway.health_path), 644),
        LAYOUT.unit_path: (app_unit(), 644),
        LAYOUT.socket_path: (app_socket(port=settings.app_port), 644),
    }


def markers(setup, populated, settings):
    answer = {"setup": setup, HISTORY_MARKER: HISTORY} if setup else {}
    if populated:
        answer.update({populate_marker(command): command for command in settings.app_populate_commands})
    return {"markers": answer}


def serving(commit, running=None, socket=True):
    return {
        "current": release(commit) if commit else None,
        "running": release(running or commit) if (running or commit) else None,
        "socket": socket,
    }


def host_facts(
    settings,
    *,
    installed=True,
    commit=OLD,
    remote=OLD,
    setup=None,
    populated=True,
    health=200,
    env=None,
    running=None,
    built=None,
    venv_works=True,
    history=None,
):
    """A backend as the deploy left it serving `commit` (installed=False: a fresh host), asked to
    deploy `remote`; the steps after each operation see what it leaves (ByOperation)."""
    setup = setup or commit
    owned = {"mode": 644, "user": "root", "group": "root"}
    uploads = managed_files(settings) if installed else {}
    env_text = (
        env
        if env is not None
        else env_file(
            db_host=db_address(settings), db_password=SECRETS["db_password"], secret_key=SECRETS["django_secret_key"]
        )
    )
    files = {f"path={path}": dict(owned, mode=mode, size=len(text)) for path, (text, mode) in uploads.items()}
    files[f"path={LAYOUT.env_file}"] = {"mode": 600, "user": "root", "group": "root"} if installed else None
    for path in managed_files(settings):
        files.setdefault(f"path={path}", None)
    directories = {}
    directories.update({f"path={path}": {"mode": 755, "user": "root", "group": "root"} for path in PARENTS})
    directories.update({f"path={path}": None for path in managed_files(settings)})
    mirror_before = {"origin": REPO, "commit": commit} if installed else None
    built_commits = built if built is not None else ([commit] if installed else [])
    # Read as the app user, at most so many bytes (the history: its end).
    text = {
        f"limit=128, path={release(commit)}/.deploy-built": f"{commit}\n" if commit in built_commits else None,
        f"end=True, limit=65536, path={LAYOUT.history}": history,
        f"limit=128, path={release(remote)}/.deploy-built": ByOperation(
            f"{remote}\n" if remote in built_commits else None, f"{remote}\n", until=BEFORE_BUILD
        ),
    }
    units = [{"running": installed, "enabled": installed}] * 2
    return {
        DebPackages: {
            "git": {"1"},
            "ca-certificates": {"1"},
            "python3-psycopg2": {"1"},
            **({"postgresql-client": {"1"}} if settings.db_service == "rds" else {}),
        }
        if installed
        else {},
        SystemAccount: {
            f"account={LAYOUT.user}": ByOperation(
                {"user": None, "group": None}, {"user": ACCOUNT, "group": 998}, until=BEFORE_ACCOUNT
            )
            if not installed
            else {"user": ACCOUNT, "group": 998}
        },
        File: files,
        Directory: directories,
        Sha1File: {f"path={path}": hashlib.sha1(text.encode()).hexdigest() for path, (text, _) in uploads.items()},
        **per_path(
            FileSummary,
            FileSummaries,
            file_summaries(
                {
                    **{path: None for path in managed_files(settings)},
                    **{path: (text, mode, "root", "root") for path, (text, mode) in uploads.items()},
                    LAYOUT.env_file: (env_text, 600, "root", "root") if installed else None,
                    LOGROTATE_PATH: None,
                }
            ),
        ),
        Which: {"command=git": "/usr/bin/git" if installed else None},
        GitRemoteRef: {f"ref=main, repo={REPO}": {"refs/heads/main": remote, "HEAD": remote}},
        MirrorCommit: {
            f"ref=main, repo={LAYOUT.repo}": ByOperation(
                mirror_before, {"origin": REPO, "commit": remote}, until=BEFORE_FETCH
            )
        },
        AppFileText: text,
        CommitFile: {
            f"commit={remote}, limit=1048576, path=requirements.txt, repo={LAYOUT.repo}": REQUIREMENTS,
        },
        VenvWorks: {
            f"path={release(remote)}/.venv": venv_works,
            f"path={release(commit)}/.venv": venv_works,
            f"path={VENV}": venv_works and installed,
        },
        ServiceRelease: {
            f"current={LAYOUT.current}, service={LAYOUT.service}": ByOperation(
                serving(commit if installed else None, running), serving(remote), until=BEFORE_SWITCH
            )
        },
        BuiltReleases: {f"releases={LAYOUT.releases}": sorted(set(built_commits) | {remote}, reverse=True)},
        # The release served before (a deploy that stops early goes on with it in the harness).
        DeployMarkers: {
            f"release={release(commit)}": markers(setup if installed else None, populated, settings),
            f"release={release(remote)}": ByOperation(
                markers(setup if installed else None, populated, settings),
                markers(remote, populated, settings),
                until=BEFORE_SETUP,
            ),
        },
        UnitStates: {APP_UNITS: units},
        PathStates: {APP_PATHS: APP_PATH_STATES if installed else {}},
        Directories: {LEGACY: []},
        HttpStatus: {f"address=10.0.1.11, path={settings.gateway.health_path}, port={settings.app_port}": health},
    }


def deploy(facts, settings, me=ME, others=OTHERS, function=deploy_backend, yes=False, **kwargs):
    return run_deploy(
        function,
        facts=facts,
        groups=["backends"],
        host_data=me,
        other_hosts=others,
        yes=yes,
        kwargs={"settings": settings, **({"secrets": SECRETS} if function is deploy_backend else {}), **kwargs},
    )


def asked(run, fact) -> int:
    """How many times one run asked the host for `fact` (any arguments)."""
    return sum(call.startswith(f"{fact.name}(") for call in run.fact_calls)


@deploy_function("Backend and its log rotation")
def backend_with_log_rotation(settings, secrets):
    deploy_backend(settings=settings, secrets=secrets)
    deploy_log_rotation()


def test_converged_backend_changes_nothing_and_still_checks_health():
    settings = base()
    run = deploy(host_facts(settings), settings)
    assert run.changed == []
    assert run.has(SETUP) and run.has(POPULATE) and run.has(SWITCH_A) and run.has(SWITCH_B)
    assert "tasks.backend.facts.HttpStatus(address=10.0.1.11, path=/despachos/reporte/, port=8080)" in run.fact_calls


def test_a_converged_backend_asks_each_question_once_per_run():
    settings = base()
    run = deploy(host_facts(settings), settings, yes=True)
    assert run.changed == []
    # One start of Django for the markers, one read of the mirror and of the remote, for the
    # fetch, build, setup, populate and switch together; one getent for the app user and group;
    # what the backend serves, once for its switch and the prune; one systemctl for both units;
    # one look for the layout of before releases; one read of all the managed files.
    once = (
        DeployMarkers,
        MirrorCommit,
        GitRemoteRef,
        SystemAccount,
        ServiceRelease,
        UnitStates,
        Directories,
        FileSummaries,
    )
    assert [asked(run, fact) for fact in once] == [1] * len(once)
    assert asked(run, FileSummary) == 0
    assert not any(call.startswith(("systemd.", "hardware.Cpus")) for call in run.fact_calls)
    assert not any(call.startswith(("server.Users", "server.Groups")) for call in run.fact_calls)
    # Files go into folders that exist: no check of their parent folders.
    assert not any(call.startswith("files.Directory(path=/etc/systemd/system") for call in run.fact_calls)


def test_the_package_list_is_read_once_for_the_backend_and_its_log_rotation():
    settings = base()
    facts = host_facts(settings)
    facts[DebPackages] = {**facts[DebPackages], "logrotate": {"1"}}
    facts[File][f"path={LOGROTATE_PATH}"] = None
    facts[Directory][f"path={LOGROTATE_PATH}"] = None
    run = run_deploy(
        backend_with_log_rotation,
        facts=facts,
        groups=["backends"],
        host_data=ME,
        other_hosts=OTHERS,
        kwargs={"settings": settings, "secrets": SECRETS},
        yes=True,
    )
    assert asked(run, DebPackages) == 1
    assert run.changed == ["Rotate the app's logs (logrotate)"]


def test_after_an_install_the_package_list_is_read_again():
    settings = base()
    facts = host_facts(settings)
    facts[DebPackages] = {"logrotate": {"1"}}
    facts[FileSummary].update(file_summaries({LOGROTATE_PATH: (app_logrotate(), 644, "root", "root")}))
    facts[Directory][f"path={LOGROTATE_PATH}"] = None
    run = run_deploy(
        backend_with_log_rotation,
        facts=facts,
        groups=["backends"],
        host_data=ME,
        other_hosts=OTHERS,
        kwargs={"settings": settings, "secrets": SECRETS},
        yes=True,
    )
    assert run.op("Ensure git, CA certificates and psycopg2 are installed").changes
    assert asked(run, DebPackages) == 2


def test_markers_are_read_again_after_the_setup_writes_one_so_the_switch_sees_it():
    settings = base()
    run = deploy(host_facts(settings, remote=NEW), settings, yes=True)
    assert run.changed == [FETCH, BUILD, SETUP, TRIAL, SWITCH_A]
    # The setup's read, then the populate's after the setup ran (the switch reuses it: the
    # populate changed nothing); the mirror again after the fetch.
    assert asked(run, DeployMarkers) == 2
    assert asked(run, MirrorCommit) == 2
    assert run.op(SWITCH_A).commands[0] == switch_command(NEW, previous=OLD, reexec=True)


def test_a_fresh_backend_reads_the_markers_after_each_step_that_writes_them():
    settings = base()
    run = deploy(host_facts(settings, installed=False, commit=None, remote=NEW, populated=False), settings, yes=True)
    assert run.op(SETUP).changes and run.op(POPULATE).changes and run.op(SWITCH_A).changes
    assert asked(run, DeployMarkers) == 3
    assert run.op("Ensure the app group exists").commands == ["groupadd -r sprint2"]
    assert run.op("Ensure the app user exists").commands == [
        "useradd -r -M -d /srv/sprint2 -s /usr/sbin/nologin -g sprint2 sprint2"
    ]
    assert asked(run, SystemAccount) == 2  # again after the group was made


def test_an_app_user_with_another_shell_or_group_is_corrected():
    settings = base()
    facts = host_facts(settings)
    facts[SystemAccount] = {"account=sprint2": {"user": {**ACCOUNT, "shell": "/bin/bash", "gid": 100}, "group": 998}}
    run = deploy(facts, settings)
    assert run.changed == ["Ensure the app user exists"]
    assert run.op("Ensure the app user exists").commands == ["usermod -s /usr/sbin/nologin -g sprint2 sprint2"]


def test_fresh_backend_mirrors_builds_sets_up_populates_and_switches():
    settings = base()
    run = deploy(host_facts(settings, installed=False, commit=None, remote=NEW, populated=False), settings)
    # The gateway's drain around each batch acts on Kong nodes only (tests/tasks/kong/test_kong_drain.py).
    assert run.changed == [
        name for name in run.names if name not in (HEALTH, SWITCH_B, PRUNE, LOCK_OP) and not gateway(name)
    ]
    git = f"{APP} git --git-dir=/srv/sprint2/repo.git"
    # Made in its folder (the app user's, in root's home), as `git clone --mirror` would.
    assert run.op(FETCH).commands[:2] == [
        f"{git} init --quiet --bare && {git} config remote.origin.url {REPO} && "
        f"{git} config remote.origin.fetch '+refs/*:refs/*' && {git} config remote.origin.mirror true",
        f"{git} fetch --quiet --prune --force --tags origin",
    ]
    assert run.op(BUILD).commands == [
        f"{git} worktree prune && {APP} mkdir -p /srv/sprint2/releases && {APP} rm -rf {release(NEW)} && "
        f"{git} worktree add --quiet --detach --force {release(NEW)} {NEW}",
        # Root's copy of the controller's lock, in root's folder; the virtualenv built from it.
        "mkdir -p -m 755 /etc/sprint2/locks",
        f"upload {COPY}.new",
        f"chmod 644 {COPY}.new && chown root:root {COPY}.new && mv -f {COPY}.new {COPY}",
        uv_installed(LAYOUT),
        venv_built(LAYOUT, COPY, VENV),
        f"{APP} ln -sfn {VENV} {release(NEW)}/.venv",
        f"{RUN} --in {release(NEW)} 'python manage.py collectstatic --noinput'",
        f"{APP} rm -f {release(NEW)}/.deploy-built && echo {NEW} | {APP} tee {release(NEW)}/.deploy-built > /dev/null",
        run.op(BUILD).commands[-1],
    ]
    # From the new release, before it serves: the saved migration history (as root, with the
    # deploy-only role's login in a root-only file for the setup's duration), the check before
    # every setup command, the history saved before each (so before migrate), the commit recorded.
    *login, setup = run.op(SETUP).commands
    credentials = "/etc/sprint2/migration-history.json"
    assert login[0] == f"install -m 600 -o root -g root /dev/null {credentials}.new"
    assert login[1] == f"upload {credentials}.new" and json.loads(run.op(SETUP).uploads[f"{credentials}.new"]) == {
        "host": "10.0.1.10",
        "port": 5432,
        "dbname": "dispatch_db",
        "user": "sprint2_deploy",
        "password": SECRETS["db_history_password"],
    }
    assert login[2] == f"mv -f {credentials}.new {credentials}"
    root = f"cd / && /usr/bin/python3 -I -c {shlex.quote(ROOT_SCRIPT)} /etc/sprint2/conf/deploy_marker.py"
    history = types.SimpleNamespace(format=lambda action: f"{root} {action} {release(NEW)} {credentials} sprint2")
    app = f"{RUN} --in {release(NEW)} '{{}}'"
    steps = [
        history.format("restore-migrations"),
        app.format(f"{MARKER} check-migrations --adopt-legacy"),
        history.format("save-migrations"),
        app.format("python manage.py makemigrations --noinput"),
        app.format(f"{MARKER} check-migrations"),
        history.format("save-migrations"),
        app.format("python manage.py migrate --noinput"),
        history.format("save-migrations"),
        app.format(f"{MARKER} setup-done {NEW}"),
    ]
    assert setup.startswith(f"trap 'rm -f {credentials}' EXIT; if reason=$({{ " + " && ".join(steps) + "; }")
    assert setup.endswith(
        f"cannot set the database up for {NEW[:12]}: $reason; every backend keeps serving its release: "
        "commit the migrations in the app, or start from an empty database (docs/deploying.md: Moving to "
        'another commit of the app)" >&2; exit 1; fi'
    )
    assert run.op(POPULATE).commands == [
        f"{RUN} --in {release(NEW)} '{MARKER} once {populate_marker(command)} '\"'\"'{command}'\"'\"''"
        for command in ("python populate.py", "python populateDespachos.py")
    ]
    assert run.op(SWITCH_A).changes and not run.op(SWITCH_B).changes  # b switches in its own batch
    assert run.names.index(SETUP) < run.names.index(POPULATE) < run.names.index(SWITCH_A) < run.names.index(HEALTH)


def trial_command(commit):
    import shlex

    probe = f"python3 -c {shlex.quote(HEALTH_PROBE)} 127.0.0.1 18080 /despachos/reporte/ 200,302 60"
    gunicorn = (
        "exec gunicorn --config /etc/sprint2/conf/gunicorn.conf.py --bind 127.0.0.1:18080 --workers 1 "
        "--pid /srv/sprint2/releases/.trial.pid provesi.wsgi:application"
    )
    pidfile = "/srv/sprint2/releases/.trial.pid"
    return (
        f"{APP} rm -f {pidfile}; {RUN} --quiet --in {release(commit)} '{gunicorn}' > /dev/null 2>&1 & "
        f"if status=$({probe}); then healthy=yes; else healthy=no; fi; "
        f"pid=$({APP} head -c 16 {pidfile} 2>/dev/null); "
        f"case $pid in ''|*[!0-9]*) ;; *) {APP} kill $pid 2>/dev/null;; esac; "
        "for pid in $(ss -Hltnp 'sport = :18080' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); "
        f"do {APP} kill $pid; done; wait; "
        f'if [ $healthy = no ]; then echo "@fake/target: release {commit[:12]} answered $status on '
        "/despachos/reporte/ (tried on 127.0.0.1:18080, beside the running release); nothing switched; the roll "
        'stopped here" >&2; exit 1; fi'
    )


def switch_command(commit, previous=None, reexec=False):
    """reexec: only the release changes, so gunicorn re-execs into it (USR2) instead of a restart."""
    app = APP
    # Root's link in root's home.
    link = "ln -sfn {} /srv/sprint2/current.next && mv -T /srv/sprint2/current.next /srv/sprint2/current"
    import shlex

    probe = f"python3 -c {shlex.quote(HEALTH_PROBE)} 10.0.1.11 8080 /despachos/reporte/ 200,302 60"
    return (
        f"previous={release(previous) if previous else chr(39) * 2}; {link.format(release(commit))} && "
        "{ systemctl is-active --quiet sprint2-app.socket || { systemctl stop sprint2-app; "
        "systemctl enable --now sprint2-app.socket; }; } && "
        f"{go_live('sprint2-app', 60) if reexec else 'systemctl restart sprint2-app'} && "
        f"if status=$({probe}); then "
        f'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) {commit}" | {app} tee -a /srv/sprint2/releases/.history > /dev/null; '
        f'else if [ -n "$previous" ] && [ "$previous" != {release(commit)} ]; then {link.format("$previous")} && '
        f'systemctl restart sprint2-app; {probe} > /dev/null; back="switched back to ${{previous##*/}}"; '
        "else back='no earlier release to go back to'; fi; "
        f'hint=; [ "$status" != 404 ] || hint={shlex.quote("; " + NOT_FOUND_HINT)}; '
        f'echo "@fake/target: release {commit[:12]} answered $status on /despachos/reporte/; $back; the roll stopped '
        'here$hint" >&2; exit 1; fi'
    )


def test_a_new_commit_is_built_beside_the_running_release_then_switched_health_gated():
    settings = base()
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert run.changed == [FETCH, BUILD, SETUP, TRIAL, SWITCH_A]
    assert (
        run.op(FETCH).commands[0]
        == f"{APP} git --git-dir=/srv/sprint2/repo.git fetch --quiet --prune --force --tags origin"
    )
    # The running release is never touched before the switch: the build works in releases/NEW.
    assert all(
        release(OLD) not in command and "/srv/sprint2/current" not in command
        for command in run.op(BUILD).commands + run.op(SETUP).commands
    )
    # First a trial of the new release beside the running one, on every backend before the first
    # batch: a broken release never serves, and no batch switches.
    assert run.op(TRIAL).commands == [trial_command(NEW)]
    assert run.names.index(TRIAL) < run.names.index(SWITCH_A)
    switch = run.op(SWITCH_A).commands
    assert switch[0] == switch_command(NEW, previous=OLD, reexec=True)
    assert "serving release" in switch[1]
    assert run.op(POPULATE).commands == []


def test_a_release_that_failed_its_trial_on_another_backend_is_neither_tried_nor_switched_here():
    settings = base()
    run = run_deploy(
        deploy_backend,
        facts=host_facts(settings, remote=NEW),
        groups=["backends"],
        host_data=ME,
        other_hosts=OTHERS,
        kwargs={"settings": settings, "secrets": SECRETS},
        failed=("des-backend-b",),
    )
    assert run.op(TRIAL).commands == []
    assert run.op(SWITCH_A).commands == [
        f"echo '@fake/target: not switched to {NEW[:12]}: the roll stopped at @fake/des-backend-b' >&2; exit 1"
    ]


def test_the_batches_follow_the_setting_and_the_setup_backend_goes_first():
    class Backend:
        def __init__(self, key):
            self.name, self.data = f"@h{key}", {"name": f"des-backend-{key}"}

    a, b, c = (Backend(key) for key in "abc")
    assert batches([c, a, b], 1) == [[a], [b], [c]]
    assert batches([c, a, b], 2) == [[a, b], [c]]
    settings = base({"switch_batch_size": 2})
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert run.has("Switch to the release of main, batch 1 of 1 (des-backend-a, des-backend-b)")


def test_the_second_backend_switches_in_the_second_batch_and_never_sets_up():
    settings = base()
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    others = {"db": OTHERS["db"], "backends": [("des-backend-a", {"private_ip": "10.0.1.11", "name": "des-backend-a"})]}
    facts = host_facts(settings, remote=NEW)
    facts[HttpStatus] = {"address=10.0.1.12, path=/despachos/reporte/, port=8080": 200}
    run = deploy(facts, settings, me=me, others=others)
    assert not run.has(SETUP) and not run.has(POPULATE)
    assert not run.op(SWITCH_A).changes and run.op(SWITCH_B).changes


def test_what_a_backend_serves_is_read_when_the_roll_starts_not_in_its_own_batch():
    # Read in the trial before batch 1 it serves the release; read any later, it would not: a
    # trial or a switch in batch 2 shows that it was read late.
    # des-backend-0 sorts first: it sets up and switches in batch 1, this backend (a) in batch 2.
    settings = base()
    others = {"db": OTHERS["db"], "backends": [("des-backend-0", {"private_ip": "10.0.1.10", "name": "des-backend-0"})]}
    facts = host_facts(settings)
    facts[ServiceRelease] = {
        f"current={LAYOUT.current}, service={LAYOUT.service}": ByOperation(serving(OLD), serving(NEW), until=("Try ",))
    }
    run = deploy(facts, settings, others=others, yes=True)
    assert run.has("Switch to the release of main, batch 2 of 2 (des-backend-a)")
    assert run.changed == [] and asked(run, ServiceRelease) == 1


def test_changed_settings_restart_the_backend_in_its_batch():
    settings = base()
    run = deploy(host_facts(settings, env="DATABASE_PASSWORD=old\n"), settings)
    assert run.changed == ["Write the app's secrets to its root-only environment file", SWITCH_A]
    # The same release: restarted behind the socket, no trial needed.
    assert run.op(SWITCH_A).commands[0] == switch_command(OLD, previous=OLD)


def test_after_a_file_is_written_the_next_check_reads_the_files_again():
    settings = base()
    run = deploy(host_facts(settings, env="DATABASE_PASSWORD=old\n"), settings, yes=True)
    assert "Write the app's secrets to its root-only environment file" in run.changed
    assert asked(run, FileSummaries) == 2  # the files after the secrets are read again


def test_after_a_switch_the_prune_reads_again_what_the_backend_serves():
    settings = base()
    unchanged = deploy(host_facts(settings), settings, yes=True)
    switched = deploy(host_facts(settings, env="DATABASE_PASSWORD=old\n"), settings, yes=True)
    assert SWITCH_A in switched.changed
    assert (asked(unchanged, ServiceRelease), asked(switched, ServiceRelease)) == (1, 2)


def test_a_backend_running_another_release_than_current_is_restarted_though_nothing_changed():
    # An earlier run moved `current` to NEW, then failed or was interrupted before the restart.
    settings = base()
    run = deploy(host_facts(settings, commit=NEW, remote=NEW, running=OLD, built=[OLD, NEW]), settings)
    assert run.changed == [TRIAL, SWITCH_A]
    # Should NEW fail its health check, the backend goes back to what it served: OLD, not `current`.
    assert run.op(TRIAL).commands == [trial_command(NEW)]
    assert run.op(SWITCH_A).commands[0] == switch_command(NEW, previous=OLD, reexec=True)


def test_a_release_the_database_is_not_set_up_for_is_not_switched_to():
    settings = base()
    facts = host_facts(settings, remote=NEW)
    facts[DeployMarkers] = {f"release={release(NEW)}": markers(OLD, True, settings)}  # the setup backend failed
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    others = {"db": OTHERS["db"], "backends": [("des-backend-a", {"private_ip": "10.0.1.11", "name": "des-backend-a"})]}
    facts[HttpStatus] = {"address=10.0.1.12, path=/despachos/reporte/, port=8080": 200}
    run = deploy(facts, settings, me=me, others=others)
    assert run.op(SWITCH_B).commands == [
        f"echo '@fake/target: not switched to {NEW[:12]}: the database is set up for {OLD[:12]}; it keeps serving its "
        "release' >&2; exit 1"
    ]


def test_a_built_release_whose_virtualenv_does_not_run_gets_a_new_one():
    settings = base()
    run = deploy(host_facts(settings, commit=OLD, remote=OLD, venv_works=False), settings)
    assert run.changed == [BUILD]
    assert run.op(BUILD).commands[0] == "mkdir -p -m 755 /etc/sprint2/locks"
    assert run.op(BUILD).commands[-3] == venv_built(LAYOUT, COPY, VENV)
    assert run.op(BUILD).commands[-1] == f"{APP} ln -sfn {VENV} {release(OLD)}/.venv"


def test_old_releases_beyond_the_setting_are_pruned_never_the_live_one():
    settings = base()
    facts = host_facts(settings)
    older = ["c" * 40, "d" * 40, "e" * 40]
    facts[BuiltReleases] = {f"releases={LAYOUT.releases}": ["f" * 40, "9" * 40, OLD, *older]}
    facts[ServiceRelease] = {f"current={LAYOUT.current}, service={LAYOUT.service}": serving("9" * 40, running=OLD)}
    run = deploy(facts, settings)
    removes = run.op(PRUNE).commands
    assert [command for command in removes if "worktree remove" in command] == [
        f"{APP} git --git-dir=/srv/sprint2/repo.git worktree remove --force {release(commit)} || {APP} rm -rf "
        f"{release(commit)}"
        for commit in older
    ]


def test_the_layout_of_before_releases_is_removed_once_a_release_serves():
    settings = base()
    facts = host_facts(settings)
    facts[Directories][LEGACY] = ["/srv/sprint2/app"]
    assert deploy(facts, settings).op(PRUNE).commands == ["rm -rf /srv/sprint2/app"]


def test_only_full_commit_ids_are_releases_whatever_the_app_user_plants_there():
    # The releases folder is the app user's; its names go into root's commands (prune, rollback).
    output = [
        "1700000000.0 /srv/sprint2/releases/" + "a" * 40,
        "1600000000.0 /srv/sprint2/releases/x;echo${IFS}owned|sh",
        "1500000000.0 /srv/sprint2/releases/" + "b" * 39,
    ]
    assert BuiltReleases().process(output) == ["a" * 40]


def test_a_failing_first_release_never_goes_back_to_the_layout_of_before_releases():
    settings = base()
    facts = host_facts(settings, remote=NEW)
    facts[ServiceRelease] = {
        f"current={LAYOUT.current}, service={LAYOUT.service}": {
            "current": None,
            "running": "/srv/sprint2/app",
            "socket": False,
        }
    }
    switch = deploy(facts, settings).op(SWITCH_A).commands
    assert switch[0].startswith("previous=''; ")


def test_an_unreachable_repository_is_one_line_naming_it_and_what_to_check():
    settings = base()
    facts = host_facts(settings, remote=NEW)
    facts[GitRemoteRef] = {f"ref=main, repo={REPO}": {"error": "fatal: unable to access 'x': Could not resolve host"}}
    (command,) = deploy(facts, settings).op(FETCH).commands
    assert command == (
        f"echo '@fake/target: cannot read app_repo {REPO}: fatal: unable to access '\"'\"'x'\"'\"': Could not "
        "resolve host; check that this host can reach it (outbound access, DNS, credentials) or set app_repo to a "
        "mirror it can reach' >&2; exit 1"
    )


def test_a_populate_command_already_done_is_not_run_again_and_the_other_is():
    settings = base()
    facts = host_facts(settings)
    facts[DeployMarkers] = {
        f"release={release(OLD)}": {
            "markers": {
                "setup": OLD,
                HISTORY_MARKER: HISTORY,
                populate_marker("python populate.py"): "python populate.py",
            }
        }
    }
    run = deploy(facts, settings)
    assert run.op(POPULATE).commands == [
        f"{RUN} --in {release(OLD)} '{MARKER} once {populate_marker('python populateDespachos.py')} "
        "'\"'\"'python populateDespachos.py'\"'\"''"
    ]


def test_allowing_destructive_migrations_reaches_the_check():
    settings = base({"allow_destructive_migrations": True})
    setup = deploy(host_facts(settings, remote=NEW), settings).op(SETUP).commands[-1]
    assert setup.count(f"{RUN} --in {release(NEW)} '{MARKER} check-migrations --allow-destructive") == 2


ROLLBACK_A = "Switch back to an earlier release, batch 1 of 2 (des-backend-a)"


def test_a_rollback_switches_to_the_release_served_before_without_migrating():
    settings = base()
    history = f"2026-11-28T10:00:00Z {OLD}\n2026-11-29T10:00:00Z {NEW}\n"
    facts = host_facts(settings, commit=NEW, remote=NEW, built=[OLD, NEW], history=history)
    run = deploy(facts, settings, function=rollback_backend)
    switches = [name for name in run.names if not gateway(name)]
    trial = "Try the earlier release beside the running one, on every backend at once"
    assert switches == [trial, ROLLBACK_A, "Switch back to an earlier release, batch 2 of 2 (des-backend-b)"]
    assert run.op(trial).commands == [trial_command(OLD)]
    assert run.op(ROLLBACK_A).commands[0] == switch_command(OLD, previous=NEW, reexec=True)
    assert not any("DeployMarkers" in call for call in run.fact_calls)  # never asks the database


def test_a_rollback_to_a_named_release_not_kept_is_one_line(capsys):
    settings = base()
    facts = host_facts(settings, commit=NEW, remote=NEW, built=[OLD, NEW])
    with pytest.raises(SystemExit):
        deploy(facts, settings, function=rollback_backend, release="c0ffee0")
    assert capsys.readouterr().err.strip() == (
        f"error: @fake/target: release 'c0ffee0' is not one of the releases kept here ({NEW[:12]}, {OLD[:12]})"
    )


def test_a_rollback_without_an_earlier_release_is_one_line(capsys):
    settings = base()
    with pytest.raises(SystemExit):
        deploy(host_facts(settings, history=f"2026-11-29T10:00:00Z {OLD}\n"), settings, function=rollback_backend)
    assert "no earlier release to roll back to" in capsys.readouterr().err


def test_populate_markers_are_one_per_command_and_fit_the_marker_column():
    assert populate_marker("python populate.py") != populate_marker("python populateDespachos.py")
    assert len(populate_marker("python " + "x" * 500 + ".py")) <= 64


def test_a_database_populated_before_per_command_markers_is_not_populated_again():
    settings = base()
    facts = host_facts(settings)
    facts[DeployMarkers] = {
        f"release={release(OLD)}": {"markers": {"setup": OLD, HISTORY_MARKER: HISTORY, "populated": "by-des-backend-a"}}
    }
    assert deploy(facts, settings).op(POPULATE).commands == []


def test_secrets_go_only_into_the_root_only_environment_file():
    settings = base()
    facts = host_facts(settings, installed=False, commit=None, populated=False)
    run = deploy(facts, settings)
    for op in run.ops:
        for command in op.commands:
            assert SECRETS["db_password"] not in command and SECRETS["django_secret_key"] not in command
        for path, text in op.uploads.items():
            if SECRETS["db_password"] in text or SECRETS["django_secret_key"] in text:
                assert path == "/etc/sprint2/env.new", path
    write = run.op("Write the app's secrets to its root-only environment file").commands
    assert write[0] == "install -m 600 -o root -g root /dev/null /etc/sprint2/env.new"
    assert (
        write[2]
        == "chmod 600 /etc/sprint2/env.new && chown root:root /etc/sprint2/env.new && mv -f /etc/sprint2/env.new /etc/sprint2/env"
    )


def test_with_sudo_the_temporary_upload_is_private_before_the_secret_is_written():
    settings = base()
    me = dict(ME, ssh_user="ubuntu", _sudo=True)
    run = deploy(host_facts(settings, env="old\n"), settings, me=me)
    write = run.op("Write the app's secrets to its root-only environment file").commands
    # A new file (O_EXCL) of a random name: nobody can have made it first, or read it.
    temporary = write[1].split(" > ", 1)[1].split(")", 1)[0]
    assert re.fullmatch(r"/tmp/pyinfra-[0-9a-f]{40}", temporary), write[1]
    assert write[1] == f"(umask 077 && set -C && : > {temporary}) && chown ubuntu {temporary}"
    assert write[2] == "upload /etc/sprint2/env.new"
    again = deploy(host_facts(settings, env="old\n"), settings, me=me)
    assert temporary not in again.op("Write the app's secrets to its root-only environment file").commands[1]


@pytest.mark.parametrize(
    "status, hint",
    [
        (500, "the app fails on this path; see its error log: journalctl -u sprint2-app, /var/log/django.log"),
        ("no answer within 30 s", "the app does not answer; see its error log"),
        (301, "set gateway.health_path to a path answering 200 or 302"),
    ],
)
def test_an_unhealthy_answer_gets_the_hint_that_fits_it(status, hint):
    settings = base()
    (command,) = deploy(host_facts(settings, health=status), settings).op(HEALTH).commands
    assert command.startswith(f"echo 'des-backend-a: health check GET /despachos/reporte/ answered {status}; {hint}")


def test_the_health_check_accepts_exactly_the_gateway_s_healthy_statuses():
    settings = base({"gateway": {"active": {"healthy_statuses": [200]}}})
    run = deploy(host_facts(settings, health=302), settings)
    assert (
        run.op("Check that /despachos/reporte/ answers 200")
        .commands[0]
        .startswith("echo 'des-backend-a: health check GET /despachos/reporte/ answered 302;")
    )


def test_a_health_path_answering_404_fails_with_one_line_naming_backend_path_status_and_hint():
    settings = base()
    run = deploy(host_facts(settings, health=404), settings)
    (command,) = run.op(HEALTH).commands  # fails the operation, printing its one line on stderr
    message, status = command.split(" >&2; ")
    assert status == "exit 1" and "\n" not in message
    assert message.startswith("echo 'des-backend-a: health check GET /despachos/reporte/ answered 404; ")
    assert "/health-check/" in message and "gateway.health_path" in message


def test_a_302_is_healthy():
    settings = base()
    assert deploy(host_facts(settings, health=302), settings).changed == []


def test_without_a_database_host_the_deploy_stops_with_one_line(capsys):
    settings = base()
    others = {group: hosts for group, hosts in OTHERS.items() if group != "db"}
    with pytest.raises(SystemExit) as exited:
        run_deploy(
            deploy_backend,
            facts=host_facts(settings),
            groups=["backends"],
            host_data=ME,
            other_hosts=others,
            kwargs={"settings": settings, "secrets": SECRETS},
        )
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: no database host is recorded: run python provision.py to create it, then deploy\n"
    )


def test_with_sudo_each_upload_goes_through_a_new_temporary_file_of_a_random_name():
    settings = base()
    me = dict(ME, ssh_user="ubuntu", _sudo=True)
    facts = host_facts(settings)
    facts[FileSummary][f"path={LAYOUT.gunicorn_conf}"] = None  # another text there: uploaded
    facts[Sha1File][f"path={LAYOUT.gunicorn_conf}"] = "0" * 40
    names = []
    for _ in range(2):
        commands = deploy(facts, settings, me=me).op("Write gunicorn's config").commands
        temporary = commands[0].split(" > ", 1)[1].split(")", 1)[0]
        assert re.fullmatch(r"/tmp/pyinfra-[0-9a-f]{40}", temporary), commands
        assert commands[:2] == [
            f"(umask 077 && set -C && : > {temporary}) && chown ubuntu {temporary}",
            f"upload {LAYOUT.gunicorn_conf}",
        ]
        names.append(temporary)
    # pyinfra's own name is a hash of the destination: the same on every run, made first by anyone.
    assert names[0] != names[1]
    # Logged in as root, pyinfra writes the destination itself: no temporary file.
    commands = deploy(facts, settings).op("Write gunicorn's config").commands
    assert commands[0] == f"upload {LAYOUT.gunicorn_conf}"


def test_a_release_without_a_kept_lock_is_resolved_once_on_the_first_backend_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "elsewhere"))
    settings = base()
    facts = host_facts(settings, remote=NEW)
    key = digest(lock_input(REQUIREMENTS, CONSTRAINTS.read_text()))
    facts[AppFileText][f"limit=1048576, path=/srv/sprint2/venvs/.locks/{key}.txt"] = LOCK
    run = deploy(facts, settings)
    command, path = resolve(LAYOUT, NEW, REQUIREMENTS, CONSTRAINTS.read_text())
    assert path == f"/srv/sprint2/venvs/.locks/{key}.txt"
    assert run.op(LOCK_OP).commands[:2] == [uv_installed(LAYOUT), wrapped_lock(command, "@fake/target", NEW)]
    assert kept_lock(NEW) == LOCK
    # Resolved as the app user, from the commit's own requirements plus the pinned additions.
    assert f"{APP} git --git-dir=/srv/sprint2/repo.git show {NEW}:requirements.txt" in command
    assert "printf '%s\\n' gunicorn==" in command and "--universal --generate-hashes" in command


def test_a_kept_lock_is_not_resolved_again():
    settings = base()
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert LOCK_OP not in run.changed
