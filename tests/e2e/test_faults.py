"""Faults on real local hosts (issue 10, "Faults"): apt busy when the deploy runs, a damaged
virtualenv, log rotation, `provision.py backup` restored into an empty database, a host whose
SSH never started. (A reboot from inside: test_database_backends.py.)

Shares the session's deployed hosts; each test leaves the platform converged.
"""

import stat
import subprocess
import time

import pytest

from tests.e2e.host_checks import counts, get, wait_for_health
from tests.e2e.local_platform import deploy_ok

pytestmark = pytest.mark.e2e

HOLD_S = 20
# apt takes fcntl locks (not flock): hold dpkg's frontend lock the same way, as a running apt does,
# from a unit of the host's own systemd (a process left behind by an ssh session did not outlive it).
HOLD_LOCK = (
    'systemd-run --quiet --collect --unit=e2e-hold-apt python3 -c "import fcntl, time; '
    "h = open('/var/lib/dpkg/lock-frontend', 'a'); fcntl.lockf(h, fcntl.LOCK_EX); "
    "open('/tmp/apt-held', 'w').write('held'); time.sleep({seconds})\" && "
    "for i in $(seq 50); do [ -f /tmp/apt-held ] && break; sleep 0.1; done; cat /tmp/apt-held"
)


def changed(result, host, operation) -> bool:
    return any(name.split(" | ")[-1] == operation for name in result.changed.get(host, []))


def test_a_deploy_waits_for_apt_held_by_another_run_then_converges(platform, run_deploy, deployed, ssh):
    name = platform.names("backend")[0]
    code, out = ssh(
        name,
        "DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get remove -y -q python3-psycopg2 >/dev/null && "
        "rm -f /tmp/apt-held && " + HOLD_LOCK.format(seconds=HOLD_S),
    )
    assert code == 0 and out.strip() == "held", out
    started = time.monotonic()
    result = deploy_ok(platform, run_deploy, "--limit", name)
    took = time.monotonic() - started
    assert changed(result, name, "Ensure each role's packages are installed, on every host at once"), result.changed
    assert "Could not get lock" not in result.output
    assert took >= HOLD_S - 3, f"the deploy finished in {took:.0f} s while apt was held for {HOLD_S} s"
    assert ssh(name, "dpkg -s python3-psycopg2 | grep -q '^Status: install ok installed'")[0] == 0
    run_deploy("--limit", name).assert_no_changes()


def test_a_venv_without_gunicorn_is_rebuilt_and_the_app_serves(platform, run_deploy, deployed, ssh):
    name = platform.names("backend")[-1]
    code, out = ssh(
        name,
        "rm /srv/sprint2/current/.venv/bin/gunicorn && systemctl restart sprint2-app; "
        "sleep 2; systemctl is-active sprint2-app",
    )
    assert out.strip() != "active", out
    result = deploy_ok(platform, run_deploy, "--limit", name)
    assert changed(result, name, "Build the release of main beside the running one"), result.changed
    assert ssh(name, "systemctl is-active sprint2-app")[1].strip() == "active"
    assert ssh(name, "grep -c 'rebuilt the virtualenv' /var/log/backend.log")[0] == 0
    wait_for_health(platform, name)
    run_deploy("--limit", name).assert_no_changes()
    counts(platform)


def test_the_app_logs_rotate_with_a_valid_config_and_the_app_keeps_logging(platform, deployed, ssh):
    name = platform.names("backend")[0]
    code, out = ssh(name, "logrotate -d /etc/logrotate.d/sprint2 2>&1")
    assert code == 0 and "error" not in out.lower(), out
    code, out = ssh(
        name,
        "logrotate -f /etc/logrotate.d/sprint2 && stat -c %s /var/log/django.log "
        "/var/log/django.log.1 && stat -c '%U:%G %a' /var/log/django.log",
    )
    assert code == 0, out
    size, rotated, owner = out.split()[0], out.split()[1], " ".join(out.split()[2:])
    assert int(size) == 0 and int(rotated) > 0 and owner == "sprint2:adm 640", out
    for _ in range(3):
        get(platform.address(name), "/no-such-page/")  # a 404 is logged by Django as a warning
    code, out = ssh(name, "stat -c %s /var/log/django.log")
    assert int(out.strip()) > 0, "the app stopped writing to django.log after the rotation"


def test_backup_pulls_a_dump_that_restores_into_an_empty_database(platform, provision, deployed, ssh, tmp_path):
    target = tmp_path / "dispatch.dump"
    result = provision("backup", str(target))
    assert result.returncode == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes()[:5] == b"PGDMP"
    again = provision("backup", str(target))
    assert again.returncode == 1 and again.stderr.strip() == (
        f"error: backup {target}: the file exists; choose a new name (backups are never overwritten)"
    )

    (db,) = platform.names("db")
    copy = subprocess.run(
        platform.ssh_argv(db, "install -m 600 -o postgres /dev/stdin /tmp/restore.dump"),
        stdin=target.open("rb"),
        capture_output=True,
        timeout=60,
    )
    assert copy.returncode == 0, copy.stderr
    # Every table's row count, as a query over the catalog, for the original and the restored copy.
    count_rows = (
        "runuser -u postgres -- psql -XtA -d {db} -c \"SELECT format('SELECT %L, count(*) FROM %I', "
        "tablename, tablename) || ';' FROM pg_tables WHERE schemaname = 'public' ORDER BY 1\" "
        "| runuser -u postgres -- psql -XtA -d {db}"
    )
    code, restored = ssh(
        db,
        "cd / && runuser -u postgres -- dropdb --if-exists restored 2>/dev/null && "
        "runuser -u postgres -- createdb restored && "
        "runuser -u postgres -- pg_restore --no-owner --exit-on-error -d restored /tmp/restore.dump && "
        + count_rows.format(db="restored"),
    )
    assert code == 0, restored
    code, original = ssh(db, "cd / && " + count_rows.format(db="dispatch_db"))
    assert code == 0 and restored == original and "pedidos_producto|" in original, (original, restored)
    assert ssh(db, "cd / && runuser -u postgres -- dropdb restored && rm /tmp/restore.dump")[0] == 0


def test_a_host_whose_ssh_never_started_is_restarted_by_apply(platform, provision, deployed, ssh):
    name = platform.names("backend")[-1]
    ssh(name, "systemctl stop ssh.socket ssh.service 2>/dev/null; true")
    result = provision("--yes")
    assert result.returncode == 0, result.output
    assert f"~ restart {name}" in result.stdout and f"restarted {name}" in result.stdout, result.stdout
    assert ssh(name, "systemctl is-active ssh.service")[1].strip() == "active"
    wait_for_health(platform, name)
    assert "No changes" in provision("--yes").stdout
