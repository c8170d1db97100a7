"""db_service: rds on local hosts (issue 21): the deploy's RDS path end to end against the local
stand-in for RDS (`<prefix>-rds`, configured by provision.py: a master user, TLS with its own CA,
scram only; stack/local/rds.py), with the real app (tests/fixtures/sprint2.bundle, the default
app_ref).

Recreates the hosts for itself (fresh hosts, no db host), so it runs last with the other modules
that do (conftest.py's ordering).
"""

import json
import re
import shlex
import subprocess
import time

import pytest
import yaml

from stack.deploy_lock_scripts import hold_script, managed_place
from tests.e2e.host_checks import RUNNING, deploy_lock, get, sql
from tests.e2e.local_platform import GIT_IDENTITY, deploy_ok
from tests.e2e.test_releases import Load

pytestmark = pytest.mark.e2e

REPORT = "/despachos/reporte/"
WORKING = "b0abfcb9949fc9fd2eb30d50c22d591d4177dfa0"  # the default app_ref
BRANCH = "rds-e2e"
MASTER_FILE = "/etc/sprint2/database-master.json"


class TimedLoad(Load):
    """The releases' Load, also noting when each failed request was sent and the slowest answer
    per backend (to tell a dropped request from a machine too busy to answer within 10 s)."""

    def __enter__(self):
        self.started, self.failures, self.slowest = time.monotonic(), [], dict.fromkeys(self.addresses, 0.0)
        return super().__enter__()

    def _ask(self, address: str) -> str:
        sent = time.monotonic()
        answer = super()._ask(address)
        name = next(name for name, known in self.addresses.items() if known == address)
        took = time.monotonic() - sent
        self.slowest[name] = max(self.slowest[name], took)
        if answer != "200":
            self.failures.append(f"{name} at {sent - self.started:.1f} s: {answer} after {took:.1f} s")
        return answer

    def report(self, what: str) -> str:
        slowest = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.slowest.items())
        return f"{super().report(what)}; slowest answer {slowest}; failures {self.failures}"


def stand_in(platform) -> str:
    return platform.names("rds")[0]


def reported(platform, ssh) -> int:
    return int(
        sql(
            ssh,
            stand_in(platform),
            "SELECT count(DISTINCT p.producto_id) FROM despachos_despacho d JOIN pedidos_pedido p "
            "ON p.id = d.pedido_id WHERE d.completado_en >= now() - interval '90 days'",
        )
    )


def running(platform, ssh) -> dict:
    return {name: ssh(name, RUNNING)[1].strip() for name in platform.names("backend")}


def push_sprint2_commit(platform) -> str:
    """A commit on top of the default one (a comment added), pushed to the served Sprint2 as BRANCH."""
    work = platform.home.parent / "sprint2-work"
    bare = platform.app_repo.served / "sprint2.git"
    env = {"PATH": "/usr/bin:/bin", **GIT_IDENTITY}
    git = lambda *args: subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True, text=True)  # noqa: E731
    if not work.exists():
        subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    git("checkout", "-q", "-B", BRANCH, WORKING)
    views = work / "despachos" / "views.py"
    views.write_text(views.read_text() + "\n# a release under load on RDS\n")
    git("commit", "-q", "-am", "A release under load on RDS")
    git("push", "-q", "-f", str(bare), BRANCH)
    return git("rev-parse", "HEAD").stdout.strip()


@pytest.fixture(scope="module")
def rds(platform, run_deploy, ssh):
    saved = platform.base_config
    platform.use_base_config(
        {key: saved[key] for key in ("project_prefix", "local_subnet")}
        | {"app_repo": platform.app_repo.sprint2_url, "db_service": "rds"}
    )
    platform.recreate_hosts()
    try:
        started = time.monotonic()
        result = deploy_ok(platform, run_deploy)
        print(f"\nrds: first deploy {time.monotonic() - started:.0f} s")
        yield result
    finally:
        platform.use_base_config(saved)


def test_the_stack_has_the_stand_in_and_no_db_host(platform, rds):
    assert platform.names("db") == []
    assert stand_in(platform) == f"{platform.prefix}-rds"
    assert stand_in(platform) not in rds.changed  # provision.py's to configure, never the deploy's


def test_the_real_app_deploys_and_every_backend_answers_with_its_data(platform, rds, ssh):
    count = reported(platform, ssh)
    assert count > 0
    assert int(sql(ssh, stand_in(platform), "SELECT count(*) FROM pedidos_pedido")) == 5000
    for name in platform.names("backend"):
        assert ssh(name, RUNNING)[1].strip() == WORKING, name
        status, body = get(platform.address(name), REPORT)
        assert status == 200, (name, status, body[:500])
        assert f"Total productos: {count}" in body, (name, re.findall(r"Total productos: \d+", body))
    # The roles and the database were made by the master user; its login is gone from the backend.
    owner = sql(
        ssh, stand_in(platform), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'dispatch_db'"
    )
    assert owner == "dispatch_user"
    for name in platform.names("backend"):
        assert ssh(name, f"test ! -e {MASTER_FILE}")[0] == 0, name


def test_a_second_deploy_changes_nothing(platform, rds, run_deploy):
    started = time.monotonic()
    result = deploy_ok(platform, run_deploy)
    print(f"\nrds: no-change deploy {time.monotonic() - started:.1f} s")
    result.assert_no_changes(hosts=platform.names("backend"))


def test_the_backends_connections_are_tls_and_plain_ones_are_refused(platform, rds, ssh):
    backends = {platform.address(name) for name in platform.names("backend")}
    seen: dict[str, set] = {}
    query = (
        "SELECT host(a.client_addr) || ' ' || a.usename || ' ' || s.ssl || ' ' || coalesce(s.version, '-') "
        "FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.client_addr IS NOT NULL"
    )
    with Load({name: platform.address(name) for name in platform.names("backend")}):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(seen) != backends:
            for line in sql(ssh, stand_in(platform), query).splitlines():
                address, user, ssl, version = line.split()
                seen.setdefault(address, set()).add((user, ssl, version))
            time.sleep(0.2)
    print(f"\npg_stat_ssl of the backends' sessions: {seen}")
    assert set(seen) >= backends, seen
    assert all(ssl == "true" and version.startswith("TLSv1.") for rows in seen.values() for _u, ssl, version in rows)
    code, out = ssh(
        platform.names("backend")[0],
        f"psql -X 'host={platform.address(stand_in(platform))} dbname=postgres user=dispatch_user sslmode=disable' "
        "-c 'SELECT 1' < /dev/null 2>&1",
    )
    assert code != 0 and "no encryption" in out, out


def test_psql_and_backup_go_through_a_backend_as_the_app_role_over_tls(platform, rds, provision, tmp_path):
    result = provision(
        "psql", "-tAc", "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    )
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == "dispatch_user true", result.output
    path = tmp_path / "dispatch_db.pgc"
    result = provision("backup", str(path))
    assert result.returncode == 0, result.output
    assert path.read_bytes()[:5] == b"PGDMP" and path.stat().st_mode & 0o777 == 0o600


def test_the_deploy_lock_is_held_on_the_database_over_tls_refuses_a_second_deploy_and_unlocks(
    platform, rds, run_deploy, provision, ssh
):
    setup_backend = platform.names("backend")[0]
    database = json.loads((platform.home / "state.json").read_text())["database"]
    place = managed_place(database["address"], database["port"], "sprint2_deploy", "/etc/sprint2/database-ca.pem")
    password = yaml.safe_load((platform.home / "secrets.yml").read_text())["db_history_password"]
    line = "e2e@here (pid 1, run rdsrdsrdsrds) deploying main since 2026-12-06T00:00:00Z"
    argv = platform.ssh_argv(setup_backend, f"sh -c {shlex.quote(hold_script(line, place))}")
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(password + "\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "acquired"
        assert deploy_lock(ssh, stand_in(platform)) == {"host": None, "advisory": line}
        tls = sql(
            ssh,
            stand_in(platform),
            "SELECT a.usename || ' ' || s.ssl FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "JOIN pg_stat_ssl s ON s.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted",
        )
        assert tls == "sprint2_deploy true", tls
        refused = run_deploy()
        assert refused.returncode != 0
        assert f"another deploy holds the lock on {setup_backend}: {line}" in refused.output, refused.output[-3000:]
        unlocked = provision("unlock")
        assert f"deploy lock released: {line} (its session on {setup_backend} was ended)" in unlocked.stdout, (
            unlocked.output
        )
        assert deploy_lock(ssh, stand_in(platform)) == {"host": None, "advisory": None}
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=60)
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("backend"))


def test_a_code_deploy_and_a_rollback_under_load_fail_no_request(platform, rds, run_deploy, rewrite_config, ssh):
    backends = platform.names("backend")
    sha = push_sprint2_commit(platform)
    try:
        assert rewrite_config(app_ref=BRANCH).returncode == 0
        with TimedLoad({name: platform.address(name) for name in backends}, path=REPORT) as load:
            started = time.monotonic()
            deploy_ok(platform, run_deploy)
            print(f"\ncode deploy on rds: {time.monotonic() - started:.0f} s")
        print("\n" + load.report(f"deploy of {sha[:12]} on rds"))
        assert load.failed() == {name: {} for name in backends}, load.report("deploy")
        assert set(running(platform, ssh).values()) == {sha}

        with TimedLoad({name: platform.address(name) for name in backends}, path=REPORT) as load:
            result = platform.run_rollback()
        print(load.report("rollback on rds"))
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert load.failed() == {name: {} for name in backends}, load.report("rollback")
        assert set(running(platform, ssh).values()) == {WORKING}
    finally:
        assert rewrite_config().returncode == 0
    deploy_ok(platform, run_deploy)
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=backends)
