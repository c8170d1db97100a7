"""deploy_backend on a fake host: a fresh backend, a converged one, a new commit, new requirements,
changed settings, the second backend, and a failing health path."""

import hashlib

import pytest

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File, Sha256File
from pyinfra.facts.hardware import Cpus
from pyinfra.facts.server import Groups, Os, Users, Which
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from stack.render.backend import (LAYOUT, allowed_hosts, app_unit, deploy_settings, env_file, extra_requirements,
                                  gunicorn_conf, run_helper)
from stack.render.kong import UPSTREAM
from stack.settings import PROJECT_ROOT, settings_from
from tasks.app_ops import DeployMarkers, FileText, GitCheckout, GitLocalCommit, GitRemoteRef, HttpStatus, VenvRuns
from tasks.app_release_ops import populate_marker
from tasks.backend import deploy_backend
from tests.harness import ByOperation, run_deploy

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
POPULATE = "Populate the database, each command once in its life"
FETCH = "Fetch main of the app and try its migrations"
FETCH_OTHER = "Fetch main of the app"
CHECKOUT = "Check out main of the app"
VENV = "Install the app's requirements in its virtualenv"
STATIC = "Collect the app's static files"
RESTART = "Restart the app for its new code, dependencies or settings"
HEALTH = "Check that /despachos/reporte/ answers 200 or 302"
RUN = "/usr/local/sbin/sprint2-run"
MARKER = "python /srv/sprint2/conf/deploy_marker.py"
# The operations that run before the database is set up see the markers as they were.
BEFORE_SETUP = ("Fetch", "Check out", "Run the app's setup", "Populate")


def base(values=None):
    """The default settings on the branch `main` (the harness's remote answers for `main`)."""
    return settings_from({"app_ref": "main", **(values or {})})


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


def markers(setup, populated, settings):
    answer = {"setup": setup} if setup else {}
    if populated:
        answer.update({populate_marker(command): command for command in settings.app_populate_commands})
    return {"markers": answer}


def host_facts(settings, *, installed=True, commit=OLD, remote=OLD, requirements=REQUIREMENTS,
               stamp=REQUIREMENTS, setup=OLD, populated=True, health=200, env=None, setup_after=None,
               running=None):
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
        GitCheckout: {f"path={LAYOUT.checkout}": {"commit": commit, "origin": REPO} if commit else
                      ByOperation(None, {"commit": remote, "origin": REPO}, until=("Fetch",))},
        GitRemoteRef: {f"ref=main, repo={REPO}": {"refs/heads/main": remote, "HEAD": remote}},
        GitLocalCommit: {f"path={LAYOUT.checkout}, ref=main": remote},
        FileText: {f"path={LAYOUT.checkout}/requirements.txt": requirements,
                   f"path={LAYOUT.requirements_stamp}": requirements_stamp(stamp) if stamp else None,
                   f"path={LAYOUT.static_stamp}": f"{commit}\n" if installed else None,
                   f"path={LAYOUT.running_commit}": f"{running or commit}\n" if installed else None},
        DeployMarkers: ByOperation(markers(setup, populated, settings),
                                   markers(setup_after or setup or remote, True, settings), until=BEFORE_SETUP),
        VenvRuns: True if installed else None,
        SystemdStatus: {SERVICE: {"sprint2-app.service": True} if installed else {}},
        SystemdEnabled: {SERVICE: {"sprint2-app.service": True} if installed else {}},
        HttpStatus: {f"address=10.0.1.11, path={settings.gateway.health_path}, port={settings.app_port}": health},
    }


def deploy(facts, settings, me=ME):
    return run_deploy(deploy_backend, facts=facts, groups=["backends"], host_data=me, other_hosts=OTHERS,
                      kwargs={"settings": settings, "secrets": SECRETS})


def test_converged_backend_changes_nothing_and_still_checks_health():
    settings = base()
    run = deploy(host_facts(settings), settings)
    assert run.changed == []
    assert run.has(SETUP) and run.has(POPULATE)
    assert "tasks.app_ops.HttpStatus(address=10.0.1.11, path=/despachos/reporte/, port=8080)" in run.fact_calls


def test_fresh_backend_installs_everything_sets_up_the_database_and_populates_it():
    settings = base()
    facts = host_facts(settings, installed=False, commit=None, remote=NEW, stamp=None, setup=None, populated=False)
    run = deploy(facts, settings)
    # A fresh host is cloned and checked out in the fetch step; the checkout step then has nothing to do.
    assert run.changed == [name for name in run.names if name not in (HEALTH, CHECKOUT)]
    assert run.op(FETCH).commands == [
        f"rm -rf /srv/sprint2/app && runuser -u sprint2 -- git clone --quiet --no-checkout {REPO} /srv/sprint2/app",
        f"runuser -u sprint2 -- git -C /srv/sprint2/app checkout --quiet --force --detach {NEW}",
        run.op(FETCH).commands[2],
    ]
    assert "cloned" in run.op(FETCH).commands[2] and "/var/log/backend.log" in run.op(FETCH).commands[2]
    venv = run.op(VENV).commands
    assert venv[0] == "test -x /srv/sprint2/venv/bin/python || runuser -u sprint2 -- python3 -m venv /srv/sprint2/venv"
    assert venv[1].endswith("pip install --quiet --disable-pip-version-check -r /srv/sprint2/app/requirements.txt")
    assert venv[2].endswith("pip install --quiet --disable-pip-version-check gunicorn")
    # The stamp goes into the app user's folder as that user (root would follow a planted link).
    assert venv[3].endswith("| runuser -u sprint2 -- tee /srv/sprint2/venv/.deploy-requirements > /dev/null")
    # The saved migration history first, a check that nothing drops data before migrate, then the
    # history and the commit recorded in the database.
    assert run.op(SETUP).commands == [
        f"{RUN} '{MARKER} restore-migrations'",
        f"{RUN} 'python manage.py makemigrations --noinput'",
        f"{RUN} '{MARKER} check-migrations'",
        f"{RUN} 'python manage.py migrate --noinput'",
        f"{RUN} '{MARKER} save-migrations'",
        f"{RUN} '{MARKER} set setup {NEW}'",
    ]
    # Each populate command in its own transaction with its own marker.
    assert run.op(POPULATE).commands == [
        f"{RUN} '{MARKER} once {populate_marker('python populate.py')} '\"'\"'python populate.py'\"'\"''",
        f"{RUN} '{MARKER} once {populate_marker('python populateDespachos.py')} '\"'\"'python populateDespachos.py'\"'\"''",
    ]
    assert run.op(RESTART).commands[0] == "systemctl restart sprint2-app"
    # Order matters: the database is migrated before any backend restarts onto the new code.
    assert run.names.index(SETUP) < run.names.index(POPULATE) < run.names.index(RESTART) < run.names.index(HEALTH)


def test_populate_markers_are_one_per_command_and_fit_the_marker_column():
    assert populate_marker("python populate.py") != populate_marker("python populateDespachos.py")
    assert len(populate_marker("python " + "x" * 500 + ".py")) <= 64


def test_a_populate_command_already_done_is_not_run_again_and_the_other_is():
    settings = base()
    facts = host_facts(settings)
    done = {"setup": OLD, populate_marker("python populate.py"): "python populate.py"}
    facts[DeployMarkers] = {"markers": done}
    run = deploy(facts, settings)
    assert run.op(POPULATE).commands == [
        f"{RUN} '{MARKER} once {populate_marker('python populateDespachos.py')} '\"'\"'python populateDespachos.py'\"'\"''"]


def test_a_database_populated_before_per_command_markers_is_not_populated_again():
    settings = base()
    facts = host_facts(settings)
    facts[DeployMarkers] = {"markers": {"setup": OLD, "populated": "by-des-backend-a"}}
    assert deploy(facts, settings).op(POPULATE).commands == []


def test_secrets_go_only_into_the_root_only_environment_file():
    settings = base()
    facts = host_facts(settings, installed=False, commit=None, stamp=None, setup=None, populated=False)
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
    settings = base()
    me = dict(ME, ssh_user="ubuntu", _sudo=True)
    run = deploy(host_facts(settings, env="old\n"), settings, me=me)
    write = run.op("Write the app's secrets to its root-only environment file").commands
    assert write[1].startswith("install -m 600 -o ubuntu /dev/null /tmp/pyinfra-")
    assert write[2] == "upload /etc/sprint2/env.new"


def test_a_new_commit_is_fetched_tried_in_a_throw_away_tree_then_checked_out_and_restarted():
    settings = base()
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert FETCH in run.changed and CHECKOUT in run.changed and RESTART in run.changed
    fetch = run.op(FETCH).commands
    assert fetch[0] == "runuser -u sprint2 -- git -C /srv/sprint2/app fetch --quiet --tags --force origin"
    git = "runuser -u sprint2 -- git -C /srv/sprint2/app"
    assert fetch[1] == (f"{git} worktree prune && runuser -u sprint2 -- rm -rf /srv/sprint2/preflight && "
                        f"{git} worktree add --quiet --force --detach /srv/sprint2/preflight {NEW}")
    # Every step of the preflight, and one line naming the step and Django's reason when one fails;
    # the running checkout is not touched until the checkout step.
    tried = (f"{RUN} '{MARKER} save-migrations' && {RUN} --in /srv/sprint2/preflight '{MARKER} restore-migrations' && "
             f"{RUN} --in /srv/sprint2/preflight 'python manage.py makemigrations --noinput' && "
             f"{RUN} --in /srv/sprint2/preflight '{MARKER} check-migrations'")
    cleanup = f"{git} worktree remove --force /srv/sprint2/preflight"
    assert fetch[2] == (
        f"if reason=$({{ {tried}; }} 2>&1 >/dev/null); then {cleanup}; else {cleanup}; "
        f"echo \"@fake/target: cannot move the database to {NEW[:12]}: $reason; every backend keeps its code: commit "
        f"the migrations in the app, or start from an empty database (README: Moving to another commit)\" >&2; "
        "exit 1; fi")
    assert len(fetch) == 3
    assert run.op(CHECKOUT).commands[0] == (
        f"runuser -u sprint2 -- git -C /srv/sprint2/app checkout --quiet --force --detach {NEW}")
    assert run.op(POPULATE).commands == []


def test_allowing_destructive_migrations_reaches_both_checks():
    settings = base({"allow_destructive_migrations": True})
    run = deploy(host_facts(settings, remote=NEW), settings)
    assert f"{RUN} --in /srv/sprint2/preflight '{MARKER} check-migrations --allow-destructive'" in run.op(FETCH).commands[2]
    run = deploy(host_facts(settings, setup=None), settings)
    assert f"{RUN} '{MARKER} check-migrations --allow-destructive'" in run.op(SETUP).commands


def test_the_other_backends_fetch_without_trying_migrations():
    settings = base()
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    others = {"db": OTHERS["db"], "backends": [("des-backend-a", {"private_ip": "10.0.1.11", "name": "des-backend-a"})]}
    facts = host_facts(settings, remote=NEW)
    facts[HttpStatus] = {"address=10.0.1.12, path=/despachos/reporte/, port=8080": 200}
    run = run_deploy(deploy_backend, facts=facts, groups=["backends"], host_data=me,
                     other_hosts=others, kwargs={"settings": settings, "secrets": SECRETS})
    assert run.op(FETCH_OTHER).commands == [
        "runuser -u sprint2 -- git -C /srv/sprint2/app fetch --quiet --tags --force origin"]


def test_a_backend_still_running_an_older_commit_is_restarted_though_nothing_changed_in_this_run():
    # An earlier run checked out NEW, then failed or was interrupted before its restart.
    settings = base()
    run = deploy(host_facts(settings, commit=NEW, remote=NEW, setup=NEW, running=OLD, stamp=REQUIREMENTS), settings)
    assert run.changed == [RESTART], run.changed
    assert run.op(RESTART).commands[0] == "systemctl restart sprint2-app"


def test_a_restart_onto_a_commit_the_database_is_not_set_up_for_is_refused():
    # The setup backend failed its migrate: the database is still set up for OLD.
    settings = base()
    run = deploy(host_facts(settings, commit=NEW, remote=NEW, setup=OLD, setup_after=OLD,
                            requirements=REQUIREMENTS + "requests\n"), settings)
    (command,) = run.op(RESTART).commands
    assert command == (
        f"echo '@fake/target: not restarted onto {NEW[:12]}: the database is set up for {OLD[:12]}; the running code "
        "keeps serving (fix the setup backend'\"'\"'s error above and re-run)' >&2; exit 1")


def test_an_unreachable_repository_is_one_line_naming_it_and_what_to_check():
    settings = base()
    facts = host_facts(settings, remote=NEW)
    facts[GitRemoteRef] = {f"ref=main, repo={REPO}": {"error": "fatal: unable to access 'x': Could not resolve host"}}
    (command,) = deploy(facts, settings).op(FETCH).commands
    assert command == (
        f"echo '@fake/target: cannot read app_repo {REPO}: fatal: unable to access '\"'\"'x'\"'\"': Could not "
        "resolve host; check that this host can reach it (outbound access, DNS, credentials) or set app_repo to a "
        "mirror it can reach' >&2; exit 1")


def test_after_a_new_checkout_static_files_and_migrations_follow_the_commit():
    # The operations after the checkout read the host when they run: they see the new commit.
    settings = base()
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

    settings = base()
    run = deploy(host_facts(settings), settings)
    assert run.names.index(SETUP) >= len(DATABASE_OPS)


def test_the_second_backend_never_runs_setup_or_populate():
    settings = base()
    me = {"private_ip": "10.0.1.11", "name": "des-backend-c", "ssh_hostname": "3.80.1.11"}
    run = deploy(host_facts(settings, installed=False, commit=None, stamp=None, setup=None, populated=False), settings,
                 me=me)
    assert not run.has(SETUP) and not run.has(POPULATE)
    assert run.op(RESTART).changes


def test_the_setup_backend_is_always_the_first_by_name():
    from tasks.backend import setup_backend

    class Backend:
        def __init__(self, key):
            self.name, self.data = f"@h{key}", {"name": f"des-backend-{key}"}

    a, b, c = (Backend(key) for key in "abc")
    assert setup_backend([c, a, b]) is a


class SetupHost:
    name, data = "@fake/des-backend-a", {"name": "des-backend-a"}


def test_without_the_setup_backend_a_commit_the_database_lacks_is_refused_before_checkout():
    settings = base()
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    run = run_deploys_checkout(settings, me, setup_reached=False, setup=OLD)
    checkout = run.op(CHECKOUT)
    assert checkout.changes
    assert checkout.commands == [
        f"echo '@fake/target: the database is not set up for {NEW[:12]} and des-backend-a, which runs the migrations, "
        f"is not in this run: deploy both (e.g. --limit backends)' >&2; exit 1"]
    # the database already set up for the new commit (by backend-a earlier): b may move to it
    run = run_deploys_checkout(settings, me, setup_reached=False, setup=NEW)
    assert any("checkout --quiet --force --detach " + NEW in command for command in run.op(CHECKOUT).commands)


def test_when_the_setup_backend_failed_in_this_run_the_others_keep_their_code():
    settings = base()
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12"}
    failed = SetupHost()
    run = run_deploys_checkout(settings, me, setup_reached=True, setup=OLD, failed=failed)
    assert run.op(CHECKOUT).commands == [
        f"echo '@fake/target: the database is not set up for {NEW[:12]} and des-backend-a, which runs the migrations, "
        f"failed in this run: fix what it reported and re-run' >&2; exit 1"]


def run_deploys_checkout(settings, me, setup_reached, setup, failed=None):
    from tasks.app_release_ops import app_checkout

    facts = host_facts(settings, commit=OLD, remote=NEW, setup=setup)
    setup_host = failed or SetupHost()

    def checkout_only():
        from pyinfra.context import state

        if failed:
            state.failed_hosts.add(failed)
        app_checkout(name="Check out main of the app", repo=settings.app_repo, ref="main", setup_host=setup_host,
                     setup_reached=setup_reached)

    from pyinfra.api import deploy as as_deploy
    return run_deploy(as_deploy("Configure the backend")(checkout_only), facts=facts, groups=["backends"],
                      host_data=me, other_hosts=OTHERS)


def test_a_tag_is_resolved_to_its_commit_and_being_there_is_no_change():
    settings = base({"app_ref": "v1.0"})
    facts = host_facts(settings)
    facts[GitRemoteRef] = {f"ref=v1.0, repo={REPO}": {"refs/tags/v1.0": "c" * 40, "refs/tags/v1.0^{}": OLD}}
    facts[GitLocalCommit] = {f"path={LAYOUT.checkout}, ref=v1.0": OLD}
    run = deploy(facts, settings)
    assert run.changed == []
    assert run.op("Check out v1.0 of the app").commands == []


def test_a_commit_ref_unknown_to_ls_remote_is_fetched_and_checked_out():
    settings = base({"app_ref": "b" * 12})
    facts = host_facts(settings)
    facts[GitRemoteRef] = {f"ref={'b' * 12}, repo={REPO}": {"refs/heads/main": OLD}}
    facts[GitLocalCommit] = {f"path={LAYOUT.checkout}, ref={'b' * 12}": NEW}
    run = deploy(facts, settings)
    assert run.op(f"Fetch {'b' * 12} of the app and try its migrations").commands[0].endswith("fetch --quiet --tags --force origin")
    assert run.op(f"Check out {'b' * 12} of the app").commands[0].endswith(f"--detach {NEW}")


def test_the_default_commit_converged_is_no_change_in_a_preview_too():
    settings = settings_from({})
    sha = settings.app_ref
    facts = host_facts(settings, commit=sha, remote=sha, setup=sha)
    facts[GitRemoteRef] = {f"ref={sha}, repo={REPO}": {"refs/heads/main": OLD}}
    facts[GitLocalCommit] = {f"path={LAYOUT.checkout}, ref={sha}": sha}
    facts[FileText][f"path={LAYOUT.static_stamp}"] = f"{sha}\n"
    assert deploy(facts, settings).changed == []


def test_changed_requirements_reinstall_and_restart():
    settings = base()
    run = deploy(host_facts(settings, requirements=REQUIREMENTS + "requests\n"), settings)
    assert run.changed == [VENV, RESTART]


def test_changed_port_rewrites_gunicorn_and_the_unit_and_restarts():
    settings = base({"app_port": 9090})
    facts = host_facts(base())
    facts[HttpStatus] = {"address=10.0.1.11, path=/despachos/reporte/, port=9090": 200}
    run = deploy(facts, settings)
    assert run.changed == ["Write gunicorn's config", "Install the app's systemd unit", "Reload systemd for the app's unit",
                           RESTART]
    assert 'bind = "0.0.0.0:9090"' in run.op("Write gunicorn's config").uploads[LAYOUT.gunicorn_conf]


def test_a_new_secret_rewrites_the_env_file_and_restarts():
    settings = base()
    run = deploy(host_facts(settings, env="DATABASE_PASSWORD=old\n"), settings)
    assert run.changed == ["Write the app's secrets to its root-only environment file", RESTART]


@pytest.mark.parametrize("status, hint", [
    (500, "the app fails on this path; see its error log: journalctl -u sprint2-app, /var/log/django.log"),
    ("no answer: [Errno 111] Connection refused", "the app does not answer; see its error log"),
    (301, "set gateway.health_path to a path answering 200 or 302"),
])
def test_an_unhealthy_answer_gets_the_hint_that_fits_it(status, hint):
    settings = base()
    (command,) = deploy(host_facts(settings, health=status), settings).op(HEALTH).commands
    assert command.startswith(f"echo 'des-backend-a: health check GET /despachos/reporte/ answered {status}; {hint}")


def test_the_health_check_accepts_exactly_the_gateway_s_healthy_statuses():
    settings = base({"gateway": {"active": {"healthy_statuses": [200]}}})
    run = deploy(host_facts(settings, health=302), settings)
    assert run.op("Check that /despachos/reporte/ answers 200").commands[0].startswith(
        "echo 'des-backend-a: health check GET /despachos/reporte/ answered 302;")


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
        run_deploy(deploy_backend, facts=host_facts(settings), groups=["backends"], host_data=ME,
                   other_hosts=others, kwargs={"settings": settings, "secrets": SECRETS})
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: no database host is recorded: run python provision.py to create it, then deploy\n")
