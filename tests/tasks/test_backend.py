"""deploy_backend on a fake host: a fresh backend, a converged one, a new commit, new requirements,
changed settings, the second backend, and a failing health path."""

import hashlib

from pyinfra.context import host, state
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File, Sha256File
from pyinfra.facts.hardware import Cpus
from pyinfra.facts.server import Groups, Os, Users, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from stack.render.backend import (LAYOUT, allowed_hosts, app_unit, deploy_settings, env_file, extra_requirements,
                                  gunicorn_conf, run_helper)
from stack.render.kong import UPSTREAM
from stack.settings import PROJECT_ROOT, settings_from
from tasks.app_ops import DeployMarker, FileText, GitCheckout, GitRemoteRef, HttpStatus, VenvRuns
from tasks.backend import deploy_backend
from tests.harness import run_deploy

SECRETS = {"db_password": "correct-horse-battery-staple", "django_secret_key": "s" * 48}
ME = {"private_ip": "10.0.1.11", "name": "des-backend-a", "ssh_hostname": "3.80.1.11"}
OTHERS = {"db": [("des-db", {"private_ip": "10.0.1.10"})],
          "backends": [("des-backend-b", {"private_ip": "10.0.1.12", "name": "des-backend-b"})]}
REPO = "https://github.com/mr-torres-d-ojedas/Sprint2.git"
OLD, NEW = "a" * 40, "b" * 40
REQUIREMENTS = "Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise\n"
SERVICE = "services=['sprint2-app.service']"
DIRS = {LAYOUT.home: LAYOUT.user, LAYOUT.conf_dir: "root", LAYOUT.static_root: LAYOUT.user,
        LAYOUT.secrets_dir: "root"}
PARENTS = ["/usr/local/sbin", "/etc/systemd/system", "/var/log", "/etc"]

SETUP = "Run the app's setup commands (migrations) from this backend only"
POPULATE = "Populate the database, once in its life"
CHECKOUT = "Check out main of the app"
VENV = "Install the app's requirements in its virtualenv"
STATIC = "Collect the app's static files"
RESTART = "Restart the app for its new code, dependencies or settings"
HEALTH = "Check that /despachos/reporte/ answers 200 or 302"


class AfterCheckout(dict):
    """A fact answer that differs for the checkout operation (the host before it) and the operations
    after it (the host after it): the harness answers facts statically, pyinfra asks again per operation."""

    def __init__(self, key, before, after):
        super().__init__({key: before})
        self.before, self.after = before, after

    def __getitem__(self, key):
        names = state.op_meta[host.current_op_hash].names if host.current_op_hash else set()
        return self.before if any("Check out" in name for name in names) else self.after


def managed_files(settings):
    """Every file the deploy uploads, with its text and mode, for a converged host."""
    return {
        LAYOUT.run_helper: (run_helper(), 755),
        LAYOUT.marker_script: ((PROJECT_ROOT / "files" / "deploy_marker.py").read_text(), 644),
        LAYOUT.settings_path: (deploy_settings(db_host="10.0.1.10", db_name="dispatch_db", db_user="dispatch_user",
                                               hosts=allowed_hosts("10.0.1.11", "3.80.1.11", UPSTREAM)), 644),
        LAYOUT.gunicorn_conf: (gunicorn_conf(port=settings.app_port, workers=5), 644),
        LAYOUT.unit_path: (app_unit(port=settings.app_port), 644),
    }


def requirements_stamp(requirements):
    return hashlib.sha256(f"{requirements}\n{extra_requirements(requirements)}".encode()).hexdigest() + "\n"


def host_facts(settings, *, installed=True, commit=OLD, remote=OLD, requirements=REQUIREMENTS,
               stamp=REQUIREMENTS, setup=OLD, populated="by-des-backend-a", health=200, env=None):
    """A backend as the deploy left it at `commit` (installed=False: a fresh host, where the
    operations after the install answer with what the earlier ones leave)."""
    owned = {"mode": 644, "user": "root", "group": "root"}
    uploads = managed_files(settings) if installed else {}
    env_text = env if env is not None else env_file(db_host="10.0.1.10", db_password=SECRETS["db_password"],
                                                    secret_key=SECRETS["django_secret_key"])
    files = {f"path={path}": dict(owned, mode=mode, size=len(text)) for path, (text, mode) in uploads.items()}
    files.update({
        f"path={LAYOUT.django_log}": {"mode": 640, "user": LAYOUT.user, "group": "adm"} if installed else None,
        f"path={LAYOUT.deploy_log}": {"mode": 640, "user": "root", "group": "adm"} if installed else None,
        f"path={LAYOUT.env_file}": {"mode": 600, "user": "root", "group": "root"} if installed else None,
    })
    for path in managed_files(settings):
        files.setdefault(f"path={path}", None)
    directories = {f"path={path}": {"mode": 700 if path == LAYOUT.secrets_dir else 755, "user": owner,
                                    "group": owner} if installed else None
                   for path, owner in DIRS.items()}
    directories.update({f"path={path}": {"mode": 755, "user": "root", "group": "root"} for path in PARENTS})
    directories.update({f"path={path}": None for path in managed_files(settings)})
    return {
        DebPackages: {"git": {"1"}, "python3-venv": {"1"}, "ca-certificates": {"1"}} if installed else {},
        Groups: {"root", "adm", LAYOUT.user} if installed else {"root", "adm"},
        Users: {LAYOUT.user: {"home": LAYOUT.home, "shell": "/usr/sbin/nologin", "group": LAYOUT.user,
                              "groups": [], "uid": 998, "gid": 998, "comment": None}} if installed else {},
        File: files,
        Directory: directories,
        Sha1File: {f"path={path}": hashlib.sha1(text.encode()).hexdigest() for path, (text, _) in uploads.items()},
        Sha256File: {f"path={LAYOUT.env_file}": hashlib.sha256(env_text.encode()).hexdigest()},
        Cpus: 2,
        Os: "Linux",
        Which: {"command=useradd": "/usr/sbin/useradd", "command=groupadd": "/usr/sbin/groupadd"},
        GitCheckout: ({f"path={LAYOUT.checkout}": {"commit": commit, "origin": REPO}} if commit else
                      AfterCheckout(f"path={LAYOUT.checkout}", None, {"commit": remote, "origin": REPO})),
        GitRemoteRef: {f"ref=main, repo={REPO}": {"refs/heads/main": remote, "HEAD": remote}},
        FileText: {f"path={LAYOUT.checkout}/requirements.txt": requirements,
                   f"path={LAYOUT.requirements_stamp}": requirements_stamp(stamp) if stamp else None,
                   f"path={LAYOUT.static_stamp}": f"{commit}\n" if installed else None},
        DeployMarker: {"marker=setup": {"value": setup}, "marker=populated": {"value": populated}},
        VenvRuns: True if installed else None,
        SystemdStatus: {SERVICE: {"sprint2-app.service": True} if installed else {}},
        SystemdEnabled: {SERVICE: {"sprint2-app.service": True} if installed else {}},
        HttpStatus: {f"address=10.0.1.11, path={settings.gateway.health_path}, port={settings.app_port}": health},
    }


def deploy(facts, settings, me=ME):
    return run_deploy(deploy_backend, facts=facts, groups=["backends"], host_data=me, other_hosts=OTHERS,
                      kwargs={"settings": settings, "secrets": SECRETS})


def test_converged_backend_changes_nothing_and_still_checks_health():
    settings = settings_from({})
    run = deploy(host_facts(settings), settings)
    assert run.changed == []
    assert run.has(SETUP) and run.has(POPULATE)
    assert "tasks.app_ops.HttpStatus(address=10.0.1.11, path=/despachos/reporte/, port=8080)" in run.fact_calls


def test_fresh_backend_installs_everything_sets_up_the_database_and_populates_it():
    settings = settings_from({})
    facts = host_facts(settings, installed=False, commit=None, remote=NEW, stamp=None, setup=None, populated=None)
    run = deploy(facts, settings)
    assert run.changed == [name for name in run.names if name != HEALTH]
    clone = run.op(CHECKOUT).commands
    assert clone[0] == f"rm -rf /srv/sprint2/app && runuser -u sprint2 -- git clone --quiet --no-checkout {REPO} /srv/sprint2/app"
    assert clone[1] == f"runuser -u sprint2 -- git -C /srv/sprint2/app checkout --quiet --force --detach {NEW}"
    venv = run.op(VENV).commands
    assert venv[0] == "test -x /srv/sprint2/venv/bin/python || runuser -u sprint2 -- python3 -m venv /srv/sprint2/venv"
    assert venv[1].endswith("pip install --quiet --disable-pip-version-check -r /srv/sprint2/app/requirements.txt")
    assert venv[2].endswith("pip install --quiet --disable-pip-version-check gunicorn")
    # The stamp goes into the app user's folder as that user (root would follow a planted link).
    assert venv[3].endswith("| runuser -u sprint2 -- tee /srv/sprint2/venv/.deploy-requirements > /dev/null")
    assert run.op(SETUP).commands == [
        "/usr/local/sbin/sprint2-run 'python manage.py makemigrations'",
        "/usr/local/sbin/sprint2-run 'python manage.py migrate --noinput'",
        f"/usr/local/sbin/sprint2-run 'python /srv/sprint2/conf/deploy_marker.py set setup {NEW}'",
    ]
    assert run.op(POPULATE).commands == [
        "/usr/local/sbin/sprint2-run 'python populate.py'",
        "/usr/local/sbin/sprint2-run 'python populateDespachos.py'",
        "/usr/local/sbin/sprint2-run 'python /srv/sprint2/conf/deploy_marker.py set populated by-des-backend-a'",
    ]
    assert run.op(RESTART).commands[0] == "systemctl restart sprint2-app"
    # Order matters: the database is migrated before any backend restarts onto the new code.
    assert run.names.index(SETUP) < run.names.index(POPULATE) < run.names.index(RESTART) < run.names.index(HEALTH)


def test_secrets_go_only_into_the_root_only_environment_file():
    settings = settings_from({})
    facts = host_facts(settings, installed=False, commit=None, stamp=None, setup=None, populated=None)
    run = deploy(facts, settings)
    for op in run.ops:
        for command in op.commands:
            assert SECRETS["db_password"] not in command and SECRETS["django_secret_key"] not in command
        for path, text in op.uploads.items():
            if SECRETS["db_password"] in text or SECRETS["django_secret_key"] in text:
                assert path == "/etc/sprint2/env.new", path
    write = run.op("Write the app's secrets to its root-only environment file").commands
    assert write[0] == "install -m 600 -o root -g root /dev/null /etc/sprint2/env.new"
    assert write[2] == "chmod 600 /etc/sprint2/env.new && chown root:root /etc/sprint2/env.new && mv -f /etc/sprint2/env.new /etc/sprint2/env"


def test_with_sudo_the_temporary_upload_is_private_before_the_secret_is_written():
    settings = settings_from({})
    me = dict(ME, ssh_user="ubuntu", _sudo=True)
    run = deploy(host_facts(settings, env="old\n"), settings, me=me)
    write = run.op("Write the app's secrets to its root-only environment file").commands
    assert write[1].startswith("install -m 600 -o ubuntu /dev/null /tmp/pyinfra-")
    assert write[2] == "upload /etc/sprint2/env.new"


def test_a_new_commit_on_the_branch_is_checked_out_and_restarted():
    settings = settings_from({})
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert CHECKOUT in run.changed and RESTART in run.changed
    assert run.op(CHECKOUT).commands[:2] == [
        "runuser -u sprint2 -- git -C /srv/sprint2/app fetch --quiet --tags --force origin",
        f"runuser -u sprint2 -- git -C /srv/sprint2/app checkout --quiet --force --detach {NEW}",
    ]
    assert run.op(POPULATE).commands == []


def test_after_a_new_checkout_static_files_and_migrations_follow_the_commit():
    # The operations after the checkout read the host when they run: they see the new commit.
    settings = settings_from({})
    facts = host_facts(settings, commit=NEW, remote=NEW, setup=OLD)
    facts[FileText][f"path={LAYOUT.static_stamp}"] = f"{OLD}\n"
    run = deploy(facts, settings)
    assert run.changed == [STATIC, SETUP]
    assert run.op(STATIC).commands == [
        "/usr/local/sbin/sprint2-run 'python manage.py collectstatic --noinput'",
        "runuser -u sprint2 -- rm -f /srv/sprint2/static/.deploy-commit && "
        f"echo {NEW} | runuser -u sprint2 -- tee /srv/sprint2/static/.deploy-commit > /dev/null",
    ]
    assert run.op(SETUP).commands[-1] == (
        f"/usr/local/sbin/sprint2-run 'python /srv/sprint2/conf/deploy_marker.py set setup {NEW}'")


def test_migrations_come_after_every_database_operation():
    # pyinfra runs the groups' operations interleaved by position (a topological sort of each host's
    # list, taken in waves), not database first: the setup must sit later than the database's last step.
    from tests.tasks.test_database import OPS as DATABASE_OPS

    settings = settings_from({})
    run = deploy(host_facts(settings), settings)
    assert run.names.index(SETUP) >= len(DATABASE_OPS)


def test_the_second_backend_never_runs_setup_or_populate():
    settings = settings_from({})
    me = {"private_ip": "10.0.1.11", "name": "des-backend-c", "ssh_hostname": "3.80.1.11"}
    run = deploy(host_facts(settings, installed=False, commit=None, stamp=None, setup=None, populated=None), settings,
                 me=me)
    assert not run.has(SETUP) and not run.has(POPULATE)
    assert run.op(RESTART).changes


def test_the_setup_backend_is_always_the_first_by_name_and_others_wait_for_it():
    from tasks.backend import missing_setup_backend, setup_backend

    class Backend:
        def __init__(self, key):
            self.name, self.data = f"@h{key}", {"name": f"des-backend-{key}"}

    a, b, c = (Backend(key) for key in "abc")
    assert setup_backend([c, a, b]) is a
    assert missing_setup_backend(a, [c, a, b], reached={a}) is None  # it is the setup backend
    assert missing_setup_backend(b, [c, a, b], reached={a, b, c}) is None  # a runs in this run
    assert missing_setup_backend(b, [c, a, b], reached={b, c}) == "des-backend-a"  # --limit without a


def test_without_the_setup_backend_a_commit_the_database_lacks_is_refused_before_checkout():
    settings = settings_from({})
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    run = run_deploys_checkout(settings, me, setup_by="des-backend-a", setup=OLD)
    checkout = run.op(CHECKOUT)
    assert checkout.changes
    assert checkout.commands == [
        f"echo '@fake/target: the database is not set up for {NEW[:12]} and des-backend-a, which runs the migrations, "
        f"is not in this run: deploy both (e.g. --limit backends)' >&2; exit 1"]
    # the database already set up for the new commit (by backend-a earlier): b may move to it
    run = run_deploys_checkout(settings, me, setup_by="des-backend-a", setup=NEW)
    assert any("checkout --quiet --force --detach " + NEW in command for command in run.op(CHECKOUT).commands)


def run_deploys_checkout(settings, me, setup_by, setup):
    from tasks.app_ops import app_checkout

    facts = host_facts(settings, commit=OLD, remote=NEW, setup=setup)

    def checkout_only():
        app_checkout(name="Check out main of the app", repo=settings.app_repo, ref="main", setup_by=setup_by)

    from pyinfra.api import deploy as as_deploy
    return run_deploy(as_deploy("Configure the backend")(checkout_only), facts=facts, groups=["backends"],
                      host_data=me, other_hosts=OTHERS)


def test_a_tag_is_resolved_to_its_commit_and_being_there_is_no_change():
    settings = settings_from({"app_ref": "v1.0"})
    facts = host_facts(settings)
    facts[GitRemoteRef] = {f"ref=v1.0, repo={REPO}": {"refs/tags/v1.0": "c" * 40, "refs/tags/v1.0^{}": OLD}}
    run = deploy(facts, settings)
    assert run.changed == []
    assert run.op("Check out v1.0 of the app").commands == []


def test_a_commit_ref_unknown_to_ls_remote_is_fetched_and_checked_out():
    settings = settings_from({"app_ref": "b" * 12})
    facts = host_facts(settings)
    facts[GitRemoteRef] = {f"ref={'b' * 12}, repo={REPO}": {"refs/heads/main": OLD}}
    run = deploy(facts, settings)
    assert run.op(f"Check out {'b' * 12} of the app").commands[1].endswith(f"--detach {'b' * 12}")


def test_changed_requirements_reinstall_and_restart():
    settings = settings_from({})
    run = deploy(host_facts(settings, requirements=REQUIREMENTS + "requests\n"), settings)
    assert run.changed == [VENV, RESTART]


def test_changed_port_rewrites_gunicorn_and_the_unit_and_restarts():
    settings = settings_from({"app_port": 9090})
    facts = host_facts(settings_from({}))
    facts[HttpStatus] = {"address=10.0.1.11, path=/despachos/reporte/, port=9090": 200}
    run = deploy(facts, settings)
    assert run.changed == ["Write gunicorn's config", "Install the app's systemd unit", "Reload systemd for the app's unit",
                           RESTART]
    assert 'bind = "0.0.0.0:9090"' in run.op("Write gunicorn's config").uploads[LAYOUT.gunicorn_conf]


def test_a_new_secret_rewrites_the_env_file_and_restarts():
    settings = settings_from({})
    run = deploy(host_facts(settings, env="DATABASE_PASSWORD=old\n"), settings)
    assert run.changed == ["Write the app's secrets to its root-only environment file", RESTART]


def test_a_health_path_answering_404_fails_with_one_line_naming_backend_path_status_and_hint():
    settings = settings_from({})
    run = deploy(host_facts(settings, health=404), settings)
    (command,) = run.op(HEALTH).commands  # fails the operation, printing its one line on stderr
    message, status = command.split(" >&2; ")
    assert status == "exit 1" and "\n" not in message
    assert message.startswith("echo 'des-backend-a: health check GET /despachos/reporte/ answered 404; ")
    assert "/health-check/" in message and "gateway.health_path" in message


def test_a_302_is_healthy():
    settings = settings_from({})
    assert deploy(host_facts(settings, health=302), settings).changed == []


def test_without_a_database_host_the_deploy_stops_with_one_line(capsys):
    import pytest

    settings = settings_from({})
    others = {group: hosts for group, hosts in OTHERS.items() if group != "db"}
    with pytest.raises(SystemExit) as exited:
        run_deploy(deploy_backend, facts=host_facts(settings), groups=["backends"], host_data=ME,
                   other_hosts=others, kwargs={"settings": settings, "secrets": SECRETS})
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: no database host is recorded: run python provision.py to create it, then deploy\n")
