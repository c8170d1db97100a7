"""The database host and the backends on real local hosts (issue 3, "What it must show").

Shares the session's deployed hosts (tests/e2e/conftest.py). Tests that change the platform
(a new commit, a third backend, a bad health path) put it back in a converged state.
"""

import json
import re
import subprocess
import time

import pytest
import yaml

from tests.e2e.host_checks import RUNNING, counts, get, pip_freeze, wait_for_health
from tests.e2e.local_platform import PREFIX, ROOT, deploy_ok

pytestmark = pytest.mark.e2e

PG_PROBE = r"""
import socket, struct, sys
user, database, host = sys.argv[1], sys.argv[2], sys.argv[3]
body = struct.pack("!i", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                            for k, v in (("user", user), ("database", database))) + b"\0"
connection = socket.create_connection((host, 5432), timeout=10)
connection.sendall(struct.pack("!i", len(body) + 4) + body)
kind = connection.recv(1)
rest = connection.recv(4096)
if kind == b"R":
    print("auth-requested", struct.unpack("!i", rest[4:8])[0])
else:
    print("refused", rest.decode(errors="replace"))
"""


def ours(platform):
    return platform.names("db") + platform.names("backend")


def main_pid(ssh, name) -> int:
    code, out = ssh(name, "systemctl show -p MainPID --value sprint2-app")
    assert code == 0, out
    return int(out.strip())


def test_both_backends_serve_the_app_with_data_from_postgresql(platform, deployed):
    data = counts(platform)
    assert data["productos"] > 0 and data["pedidos"] > 0 and data["despachos"] > 0, data
    for name in platform.names("backend"):
        assert get(platform.address(name), "/health-check/") == (200, "ok")
        # DEBUG is off and an unknown Host is refused: the deploy's settings module is in force.
        status, _ = get(platform.address(name), "/health-check/", host_header="evil.example")
        assert status == 400


def test_the_database_listens_privately_with_the_configured_connections(platform, deployed, ssh):
    (db,) = platform.names("db")
    code, out = ssh(db, "ss -ltnH | awk '{print $4}' | grep ':5432$' | sort")
    assert code == 0 and set(out.split()) == {"127.0.0.1:5432", f"{platform.address(db)}:5432"}, out
    code, out = ssh(db, "cd / && runuser -u postgres -- psql -XtAc 'SHOW max_connections'")
    assert out.strip() == "2000", out
    code, hba = ssh(db, "cat /etc/postgresql/*/main/pg_hba.conf")
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert not [rule for rule in rules if "trust" in rule or "0.0.0.0/0" in rule], hba
    app_rules = sorted(rule[3] for rule in rules if rule[1:3] == ["dispatch_db", "dispatch_user"])
    assert app_rules == sorted(f"{platform.address(name)}/32" for name in platform.names("backend"))


def test_only_backends_reach_postgresql_as_the_app_user(platform, deployed, ssh):
    (db,) = platform.names("db")
    probe = f"python3 -c '{PG_PROBE}' dispatch_user dispatch_db {platform.address(db)}"
    for kong in platform.names("kong"):
        code, out = ssh(kong, probe)
        assert "refused" in out and "pg_hba.conf" in out, out
    for name in platform.names("backend"):
        code, out = ssh(name, probe)
        assert out.strip() == "auth-requested 10", out  # 10 = SASL: scram-sha-256, no trust
        # And the app's own credentials work from there (a real query through Django).
        code, out = ssh(name, "/usr/local/sbin/sprint2-run --quiet 'python /etc/sprint2/conf/deploy_marker.py list'")
        assert code == 0, out
        markers = json.loads(out.strip().splitlines()[-1])
        assert "python populate.py" in markers.values(), markers


def test_secrets_are_in_no_tracked_file_no_command_line_and_a_root_only_env_file(platform, deployed, ssh):
    secrets = yaml.safe_load((platform.home / "secrets.yml").read_text())
    values = [secrets["db_password"], secrets["django_secret_key"]]
    for value in values:
        found = subprocess.run(["git", "grep", "-l", "-F", value], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert found.stdout == "", f"a secret is in tracked files: {found.stdout}"
    for name in ours(platform) + platform.names("kong"):
        code, out = ssh(name, "ps -eo args")
        assert code == 0 and not [value for value in values if value in out], f"{name}: a secret in ps"
    for name in platform.names("backend"):
        # The folder is root's and open (the app reads its config in /etc/sprint2/conf); the file is not.
        code, out = ssh(name, "stat -c '%a %U %G' /etc/sprint2/env /etc/sprint2")
        assert out.split("\n")[:2] == ["600 root root", "755 root root"], out
        code, out = ssh(name, "runuser -u sprint2 -- cat /etc/sprint2/env")
        assert code != 0, "the app user can read the env file"
    (db,) = platform.names("db")
    code, out = ssh(
        db,
        "cd / && runuser -u postgres -- psql -XtAc "
        "\"SELECT rolpassword FROM pg_authid WHERE rolname = 'dispatch_user'\"",
    )
    assert out.startswith("SCRAM-SHA-256$"), out


def test_a_killed_gunicorn_master_is_back_within_5_seconds(platform, deployed, ssh):
    name = platform.names("backend")[0]
    before = main_pid(ssh, name)
    assert ssh(name, f"kill -9 {before}")[0] == 0
    started = time.monotonic()
    while time.monotonic() - started < 5:
        try:
            if main_pid(ssh, name) not in (0, before) and get(platform.address(name), "/health-check/")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        pytest.fail(f"{name}: gunicorn not back within 5 s")
    assert time.monotonic() - started < 5


def test_the_app_recovers_by_itself_when_postgresql_restarts(platform, deployed, ssh):
    (db,) = platform.names("db")
    assert ssh(db, "systemctl restart postgresql")[0] == 0
    time.sleep(1)
    counts(platform)


def test_a_backend_rebooted_from_inside_comes_back_and_serves_by_itself(platform, provision, deployed, ssh):
    """As on EC2: `systemctl reboot` in the host boots it again (stack/local/supervise.py), with no
    provision.py run; the app starts at boot."""
    name = platform.names("backend")[-1]
    code, boot_id = ssh(name, "cat /proc/sys/kernel/random/boot_id")
    assert code == 0, boot_id
    ssh(name, "systemctl reboot")
    deadline = time.monotonic() + 90
    while True:
        try:
            code, now = ssh(name, "cat /proc/sys/kernel/random/boot_id", timeout=10)
        except subprocess.TimeoutExpired:
            code, now = 255, ""
        if code == 0 and now != boot_id:
            break
        assert time.monotonic() < deadline, f"{name} did not come back within 90 s of its reboot"
        time.sleep(1)
    wait_for_health(platform, name)
    again = provision("--yes")
    assert again.returncode == 0 and "No changes" in again.stdout, again.output
    counts(platform)


def test_a_backup_appears_and_restores_into_an_empty_database(platform, deployed, ssh):
    (db,) = platform.names("db")
    code, out = ssh(db, "systemctl start sprint2-db-backup.service && ls -1t /var/backups/postgresql | head -1")
    assert code == 0, out
    latest = out.strip().splitlines()[-1]
    assert re.fullmatch(r"dispatch_db-\d{8}T\d{6}Z\.sql\.gz", latest), out
    code, out = ssh(db, f"stat -c '%a %U' /var/backups/postgresql /var/backups/postgresql/{latest}")
    assert out.split("\n")[:2] == ["700 postgres", "600 postgres"], out
    restore = (
        "cd / && runuser -u postgres -- dropdb --if-exists restore_check && "
        "runuser -u postgres -- createdb restore_check && "
        f"gunzip -c /var/backups/postgresql/{latest} | runuser -u postgres -- psql -q -X -v ON_ERROR_STOP=1 "
        "-d restore_check >/dev/null && "
        "runuser -u postgres -- psql -XtA -d restore_check -c 'SELECT count(*) FROM pedidos_producto' && "
        "runuser -u postgres -- dropdb restore_check"
    )
    code, out = ssh(db, restore)
    assert code == 0, out
    assert int(out.strip().splitlines()[-1]) == counts(platform)["productos"]


def test_a_wrong_health_path_fails_the_deploy_with_one_line(platform, run_deploy, deployed, ssh):
    platform.write_config(gateway={"health_path": "/no-such-page/"})
    try:
        result = run_deploy("--limit", "backends")
    finally:
        platform.write_config()
    assert result.returncode != 0
    lines = [
        line.strip()
        for line in result.output.splitlines()
        # The switch's health gate (health_path is in gunicorn.conf: changing it restarts) or the final check.
        if re.search(rf"\] {PREFIX}-backend-\w+: (release \w+|health check GET /no-such-page/) answered 404", line)
    ]
    assert lines, result.output[-3000:]
    assert "gateway.health_path" in lines[0] and "/health-check/" in lines[0]


def test_a_new_commit_is_deployed_migrated_once_and_restarted(platform, run_deploy, app_repo, deployed, ssh):
    backends = platform.names("backend")
    rows = counts(platform)
    pids = {name: main_pid(ssh, name) for name in backends}
    migrations = {
        name: ssh(name, "grep -c 'run: python manage.py migrate' /var/log/backend.log")[1].strip() for name in backends
    }
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    sha = app_repo.push_commit(
        "Pedido: nota",
        {
            "pedidos/models.py": models.replace(
                "    creado = models.DateTimeField(auto_now_add=True)",
                "    creado = models.DateTimeField(auto_now_add=True)\n"
                "    nota = models.CharField(max_length=50, blank=True, default='')",
            )
        },
    )

    deploy_ok(platform, run_deploy)

    for name in backends:
        assert ssh(name, RUNNING)[1].strip() == sha
        assert main_pid(ssh, name) != pids[name], f"{name}: not restarted"
        after = ssh(name, "grep -c 'run: python manage.py migrate' /var/log/backend.log")[1].strip()
        expected = int(migrations[name] or 0) + (1 if name == backends[0] else 0)
        assert int(after or 0) == expected, f"{name}: migrate ran {after} times, expected {expected}"
    (db,) = platform.names("db")
    code, out = ssh(
        db,
        "cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "
        "\"SELECT column_name FROM information_schema.columns WHERE table_name = 'pedidos_pedido'\"",
    )
    assert "nota" in out.split(), out
    assert counts(platform) == rows  # populate did not run again

    again = deploy_ok(platform, run_deploy)
    again.assert_no_changes(hosts=ours(platform))


def test_a_limited_deploy_without_the_migrating_backend_keeps_the_old_code(
    platform, run_deploy, app_repo, deployed, ssh
):
    """backend-a sets the database up. `--limit backend-b` must not switch b to a release the
    database is not set up for; the next full deploy migrates once."""
    first, second = platform.names("backend")[:2]
    head = RUNNING
    migrate_count = "grep -c 'run: python manage.py migrate' /var/log/backend.log"
    old = ssh(second, head)[1].strip()
    before = {name: int(ssh(name, migrate_count)[1].strip() or 0) for name in (first, second)}
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    sha = app_repo.push_commit(
        "Pedido: prioridad",
        {
            "pedidos/models.py": models.replace(
                "    creado = models.DateTimeField(auto_now_add=True)",
                "    creado = models.DateTimeField(auto_now_add=True)\n    prioridad = models.IntegerField(default=0)",
            )
        },
    )

    limited = run_deploy("--limit", second)
    assert limited.returncode != 0, limited.output[-3000:]
    refusal = [
        line.strip()
        for line in limited.output.splitlines()
        if f"{second}: not switched to {sha[:12]}: the database is set up for " in line
        and f" and {first}, which runs the migrations, is not in this run: deploy both (e.g. --limit backends)" in line
    ]
    assert refusal, limited.output[-3000:]
    assert ssh(second, head)[1].strip() == old
    assert get(platform.address(second), "/health-check/") == (200, "ok")

    deploy_ok(platform, run_deploy)
    (db,) = platform.names("db")
    code, out = ssh(
        db,
        "cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "
        "\"SELECT column_name FROM information_schema.columns WHERE table_name = 'pedidos_pedido'\"",
    )
    assert "prioridad" in out.split(), out
    for name in (first, second):
        assert ssh(name, head)[1].strip() == sha
    assert int(ssh(first, migrate_count)[1].strip() or 0) == before[first] + 1
    assert int(ssh(second, migrate_count)[1].strip() or 0) == before[second]
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=ours(platform))


def test_a_third_backend_is_set_up_without_repopulating(platform, run_deploy, rewrite_config, deployed, ssh):
    rows = counts(platform)
    third_address = None
    added = rewrite_config(backends=["a", "b", "c"])
    assert added.returncode == 0, added.output
    try:
        deploy_ok(platform, run_deploy)
        assert len(platform.names("backend")) == 3
        assert counts(platform) == rows
        third = platform.names("backend")[-1]
        third_address = platform.address(third)
        assert "populate" not in ssh(third, "cat /var/log/backend.log")[1]
        # A new host rebuilds the release from the lock the controller keeps: the same packages.
        first = platform.names("backend")[0]
        assert ssh(third, RUNNING)[1] == ssh(first, RUNNING)[1]
        assert pip_freeze(ssh, third) == pip_freeze(ssh, first)
        (db,) = platform.names("db")
        assert f"{third_address}/32" in ssh(db, "cat /etc/postgresql/*/main/pg_hba.conf")[1]
    finally:
        removed = rewrite_config()
        assert removed.returncode == 0, removed.output
        deploy_ok(platform, run_deploy)  # pg_hba.conf and Kong forget the removed backend
    (db,) = platform.names("db")
    hba = ssh(db, "cat /etc/postgresql/*/main/pg_hba.conf")[1]
    assert f"{third_address}/32" not in hba, "the removed backend is still allowed in"
    assert len(re.findall(r"^host +dispatch_db +dispatch_user ", hba, re.M)) == len(platform.names("backend"))


def test_pg_hba_drift_is_repaired_with_a_reload_not_a_restart(platform, run_deploy, deployed, ssh):
    (db,) = platform.names("db")
    times = "cd / && runuser -u postgres -- psql -XtAc 'SELECT pg_postmaster_start_time(), pg_conf_load_time()'"
    before = ssh(db, times)[1].strip().split("|")
    assert ssh(db, "echo 'host all all 0.0.0.0/0 trust' >> /etc/postgresql/*/main/pg_hba.conf")[0] == 0

    result = deploy_ok(platform, run_deploy, "--limit", db)

    assert sorted(result.changed.get(db, [])) == [
        "Configure the database host | Allow the app user in from the backends only (pg_hba.conf)",
        "Configure the database host | Reload PostgreSQL, restarting it only for settings that need it",
    ]
    after = ssh(db, times)[1].strip().split("|")
    assert after[0] == before[0], "PostgreSQL was restarted for a pg_hba.conf change"
    assert after[1] != before[1], "PostgreSQL did not reload"
    assert "trust" not in ssh(db, "grep -v '^#' /etc/postgresql/*/main/pg_hba.conf")[1]


def test_a_migration_that_drops_a_field_is_refused_before_any_backend_moves(
    platform, run_deploy, rewrite_config, app_repo, deployed, ssh
):
    """makemigrations --noinput writes RemoveField for a removed (or renamed) field: the deploy refuses
    it in one line, every backend keeps its code and the column its data, until it is allowed."""
    head = RUNNING
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    added = models.replace(
        "    cantidad = models.PositiveIntegerField()\n",
        "    cantidad = models.PositiveIntegerField()\n    temporal = models.CharField(max_length=20, default='x')\n",
    )
    app_repo.push_commit("Pedido: temporal", {"pedidos/models.py": added})
    deploy_ok(platform, run_deploy)
    kept = app_repo.head()
    rows = counts(platform)
    pids = {name: main_pid(ssh, name) for name in platform.names("backend")}
    sha = app_repo.push_commit("Pedido: without temporal", {"pedidos/models.py": models})

    refused = run_deploy()
    lines = [line for line in refused.stderr.splitlines() if "cannot set the database up" in line]
    assert lines and f"cannot set the database up for {sha[:12]}:" in lines[0], refused.output[-4000:]
    assert (
        "the new migrations are not known to keep the data (pedidos.0" in lines[0]
        and "Remove field temporal from pedido" in lines[0]
    )
    assert "allow_destructive_migrations: true" in lines[0]
    for name in platform.names("backend"):
        assert ssh(name, head)[1].strip() == kept, f"{name} moved"
        assert main_pid(ssh, name) == pids[name], f"{name} restarted"
    assert counts(platform) == rows
    (db,) = platform.names("db")
    columns = (
        'cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "SELECT column_name FROM '
        "information_schema.columns WHERE table_name = 'pedidos_pedido'\""
    )
    assert "temporal" in ssh(db, columns)[1].split()

    try:
        assert rewrite_config(allow_destructive_migrations=True).returncode == 0
        deploy_ok(platform, run_deploy)
        assert "temporal" not in ssh(db, columns)[1].split()
        for name in platform.names("backend"):
            assert ssh(name, head)[1].strip() == sha
    finally:
        assert rewrite_config().returncode == 0
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=ours(platform))


def test_a_backend_left_on_new_code_by_a_failed_setup_is_restarted_by_the_next_deploy(
    platform, run_deploy, app_repo, deployed, ssh
):
    """PostgreSQL stops during the deploy: the setup backend fails, no backend restarts onto the
    unmigrated commit; once PostgreSQL is back, the next run brings every backend to it."""
    (db,) = platform.names("db")
    backends = platform.names("backend")
    running = RUNNING
    before = {name: ssh(name, running)[1].strip() for name in backends}
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    sha = app_repo.push_commit(
        "Pedido: urgente",
        {
            "pedidos/models.py": models.replace(
                "    cantidad = models.PositiveIntegerField()\n",
                "    cantidad = models.PositiveIntegerField()\n    urgente = models.BooleanField(default=False)\n",
            )
        },
    )
    assert ssh(db, "systemctl stop postgresql")[0] == 0
    try:
        failed = run_deploy("--limit", "backends")
        assert failed.returncode != 0
        for name in backends:
            assert ssh(name, running)[1].strip() == before[name], f"{name} restarted onto unmigrated code"
    finally:
        assert ssh(db, "systemctl start postgresql")[0] == 0
    deploy_ok(platform, run_deploy)
    for name in backends:
        assert ssh(name, running)[1].strip() == sha, f"{name} does not run {sha[:12]}"
        assert get(platform.address(name), "/health-check/") == (200, "ok")
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=ours(platform))
