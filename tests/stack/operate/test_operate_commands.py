"""The exact command lines of ssh, logs, manage and psql (pure builders, no host)."""

import shlex

import pytest

from stack.operate.commands import (
    logs_command,
    manage_command,
    managed_client_command,
    psql_command,
    since_seconds,
    ssh_argv,
)
from stack.operate.hosts import Target
from stack.settings import settings_from

KNOWN = "/p/.deploy/ssh/known_hosts"
SSH = [
    "ssh",
    "-i",
    "/p/.deploy/ssh/id_ed25519",
    "-p",
    "22",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    f"UserKnownHostsFile={KNOWN}",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "LogLevel=ERROR",
]


def host(role="backend", user="root", name="des-backend-a", address="10.77.0.20", port=22):
    return Target(name, role, address, user, "/p/.deploy/ssh/id_ed25519", KNOWN, port, address)


def test_ssh_pins_the_project_key_and_known_hosts_only():
    assert ssh_argv(host()) == SSH + ["-T", "root@10.77.0.20"]
    assert ssh_argv(host(), tty=True) == SSH + ["-t", "root@10.77.0.20"]
    assert ssh_argv(host(), ["systemctl", "status", "sprint2-app"]) == SSH + [
        "-T",
        "root@10.77.0.20",
        "systemctl",
        "status",
        "sprint2-app",
    ]


def test_ssh_options_never_trust_on_first_use():
    argv = ssh_argv(host(user="ubuntu", address="198.51.100.7", port=2222), force_tty=True, log_file="/tmp/l")
    assert argv[:7] == ["ssh", "-i", "/p/.deploy/ssh/id_ed25519", "-p", "2222", "-E", "/tmp/l"]
    assert argv[-2:] == ["-tt", "ubuntu@198.51.100.7"]
    joined = " ".join(argv)
    assert "StrictHostKeyChecking=yes" in joined and "accept-new" not in joined and "=no" not in joined


def test_an_aws_host_is_checked_under_its_instance_id():
    aws = Target("des-db", "db", "198.51.100.7", "ubuntu", "/k", KNOWN, 22, "172.31.0.4", None, "i-0abc")
    argv = ssh_argv(aws)
    assert argv[argv.index("GlobalKnownHostsFile=/dev/null") + 1 : argv.index("ConnectTimeout=10") - 1] == [
        "-o",
        "HostKeyAlias=i-0abc",
    ]


def test_manage_runs_through_the_run_helper_as_root_or_with_sudo():
    assert manage_command(host(), ["check"]) == "/usr/local/sbin/sprint2-run --quiet 'python manage.py check'"
    assert manage_command(host(user="ubuntu"), ["createsuperuser", "--username", "ana maria"]) == (
        "sudo -n /usr/local/sbin/sprint2-run --quiet "
        "'python manage.py createsuperuser --username '\"'\"'ana maria'\"'\"''"
    )


def test_psql_logs_in_as_the_app_role_itself_through_the_socket():
    """Not a superuser session taking the app's role (PGOPTIONS='-c role=...'): the app's own
    functions could RESET ROLE there. The postgres system user is mapped to the app role
    (pg_hba.conf's map=, tasks/db/render.py), so the session user is the app role."""
    settings = settings_from({"db_name": "dispatch_db", "db_user": "dispatch_user"})
    assert psql_command(host("db"), settings, []) == (
        "runuser -u postgres -- env --chdir=/ psql -U dispatch_user -d dispatch_db"
    )
    assert psql_command(host("db", user="ubuntu"), settings, ["-c", "select 1"]) == (
        "sudo -n runuser -u postgres -- env --chdir=/ psql -U dispatch_user -d dispatch_db -c 'select 1'"
    )
    assert "role=" not in psql_command(host("db"), settings, [])


def test_backend_logs_are_the_app_units_journal():
    assert logs_command(host(), None, None, False) == (
        "env SYSTEMD_COLORS=0 journalctl --unit=sprint2-app.service --no-pager --output=short-iso --lines=100"
    )
    assert logs_command(host(user="ubuntu"), 20, None, True) == (
        "sudo -n env SYSTEMD_COLORS=0 journalctl --unit=sprint2-app.service --no-pager --output=short-iso "
        "--lines=20 --follow"
    )
    assert logs_command(host(), None, 600, False).endswith("--output=short-iso --since=-600s")
    # Following from a time: every line since then; journalctl would print the FIRST 20 with --lines.
    assert logs_command(host(), 20, 600, True).endswith("--output=short-iso --since=-600s --follow")
    assert logs_command(host(user="ubuntu"), 20, 600, False) == (
        "sudo -n sh -c 'env SYSTEMD_COLORS=0 journalctl --unit=sprint2-app.service --no-pager "
        "--output=short-iso --since=-600s | tail -n 20'"
    )


def test_kong_logs_are_the_containers():
    kong = host("kong", name="des-kong")
    assert logs_command(kong, None, None, False) == "docker logs --tail=100 kong 2>&1"
    assert logs_command(kong, None, 60, True) == "docker logs --tail=all --since=60s --follow kong 2>&1"
    assert logs_command(host("kong", user="ubuntu"), 5, None, False) == "sudo -n docker logs --tail=5 kong 2>&1"
    assert logs_command(kong, 5, 60, False) == "docker logs --tail=5 --since=60s kong 2>&1"


def test_database_logs_are_postgresqls_file():
    db = host("db", name="des-db")
    # Read as postgres, whose files they are.
    as_postgres = "setpriv --reuid=postgres --regid=postgres --init-groups"
    assert logs_command(db, None, None, False) == (
        f"{as_postgres} tail -q -n 100 /var/log/postgresql/postgresql-*-main.log"
    )
    assert (
        logs_command(db, 10, None, True) == f"{as_postgres} tail -q -n 10 -F /var/log/postgresql/postgresql-*-main.log"
    )
    since = logs_command(db, None, 600, True)
    assert since.startswith("sh -c ") and "$(date +%s) - 600" in since
    assert f"{as_postgres} tail -q -n +1 -F /var/log/postgresql/postgresql-*-main.log | awk" in since
    assert "fflush()" in since
    assert logs_command(db, 5, 600, False).endswith("keep {print; fflush()}'\"'\"' | tail -n 5'")


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), (None, None)])
def test_since(text, seconds):
    assert since_seconds(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "-5m", "5 m", "1w"])
def test_since_refuses_other_spans(text):
    with pytest.raises(ValueError):
        since_seconds(text)


def test_with_rds_psql_and_pg_dump_run_on_the_backend_as_the_app_over_tls():
    database = {"address": "des-db.x.rds.amazonaws.com", "port": 5432}
    settings = settings_from({"db_service": "rds"})
    conninfo = (
        "'host=des-db.x.rds.amazonaws.com port=5432 dbname=dispatch_db user=dispatch_user "
        "sslmode=verify-full sslrootcert=/etc/sprint2/database-ca.pem'"
    )
    script = (
        "cd / && PGPASSWORD=$(sed -n 's/^DATABASE_PASSWORD=//p' /etc/sprint2/env) && export PGPASSWORD "
        f"PSQL_HISTORY=/dev/null && exec runuser -u sprint2 -- psql -X {conninfo} -c 'SELECT 1'"
    )
    assert managed_client_command(host(user="ubuntu"), "psql", settings, database, ["-c", "SELECT 1"]) == (
        f"sudo -n sh -c {shlex.quote(script)}"
    )
    dump = managed_client_command(host(), "pg_dump", settings, database, ["--format=custom"])
    assert (
        dump.startswith("sh -c ")
        and f"runuser -u sprint2 -- pg_dump {conninfo} --format=custom" in shlex.split(dump)[2]
    )
