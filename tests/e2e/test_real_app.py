"""The real Sprint2 application (tests/fixtures/sprint2.bundle) deployed with the default settings
(issue 8): only app_repo points at the bundle served on the bridge, since GitHub is unreachable.

Runs last among the e2e modules: it recreates the hosts for itself (fresh hosts, default settings).
What the real app cannot exercise here (new commits, model changes) stays with the small test app
(tests/testapp, test_database_backends.py).
"""

import http.client
import os
import re
import signal
import subprocess
import time

import pytest

from tests.e2e.host_checks import RUNNING, TableLock, deploy_lock, sql
from tests.e2e.local_platform import deploy_ok

pytestmark = pytest.mark.e2e

REPORT = "/despachos/reporte/"
# Sprint2 commits: the default (newest that works) and the next one, whose models changed.
WORKING = "b0abfcb9949fc9fd2eb30d50c22d591d4177dfa0"
MODELS_CHANGED = "6f0b6d7"
POPULATE, DESPACHOS = "python populate.py", "python populateDespachos.py"
TABLES = ("pedidos_producto", "pedidos_pedido", "despachos_despacho")


def get(address: str, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(address, 8080, timeout=30)
    connection.request("GET", path, headers={"Host": address})
    response = connection.getresponse()
    return response.status, response.read().decode()


def counts(platform, ssh) -> dict:
    db = platform.names("db")[0]
    found = {table: int(sql(ssh, db, f"SELECT count(*) FROM {table}")) for table in TABLES}
    found["despachado"] = int(sql(ssh, db, "SELECT count(*) FROM pedidos_pedido WHERE estado = 'despachado'"))
    return found


def populate_markers(platform, ssh) -> list[str]:
    db = platform.names("db")[0]
    return sql(ssh, db, "SELECT value FROM sprint2_deploy_marker WHERE name LIKE 'populate:%' ORDER BY 1").split("\n")


@pytest.fixture(scope="module")
def real(platform, run_deploy, ssh):
    """Fresh hosts with the default settings and the real app, deployed once; the clean counts."""
    saved = platform.base_config
    platform.use_base_config(
        {key: saved[key] for key in ("project_prefix", "local_subnet")} | {"app_repo": platform.app_repo.sprint2_url}
    )
    platform.recreate_hosts()
    try:
        started = time.monotonic()
        result = deploy_ok(platform, run_deploy)
        print(f"\nreal app: first deploy {time.monotonic() - started:.0f} s")
        yield {"first": result, "counts": counts(platform, ssh)}
    finally:
        platform.use_base_config(saved)


def test_defaults_deploy_the_working_commit_and_every_backend_serves_the_populated_report(platform, real, ssh):
    clean = real["counts"]
    # populate.py: one row per product of its list and 5000 orders; populateDespachos.py: one dispatch
    # per dispatched order. Exactly once each.
    assert clean["pedidos_producto"] == 125 and clean["pedidos_pedido"] == 5000, clean
    assert clean["despachos_despacho"] == clean["despachado"] > 0, clean
    db = platform.names("db")[0]
    reported = int(
        sql(
            ssh,
            db,
            "SELECT count(DISTINCT p.producto_id) FROM despachos_despacho d JOIN pedidos_pedido p "
            "ON p.id = d.pedido_id WHERE d.completado_en >= now() - interval '90 days'",
        )
    )
    assert reported > 0
    for name in platform.names("backend"):
        code, head = ssh(name, RUNNING)
        assert head.strip() == WORKING, (name, head)
        status, body = get(platform.address(name), REPORT)
        assert status == 200, (name, status, body[:500])
        assert f"Total productos: {reported}" in body, (name, re.findall(r"Total productos: \d+", body))
    assert populate_markers(platform, ssh) == [POPULATE, DESPACHOS]


def test_the_second_deploy_of_the_real_app_changes_nothing(platform, real, run_deploy):
    result = deploy_ok(platform, run_deploy)
    result.assert_no_changes(hosts=platform.names("db") + platform.names("backend"))


def test_a_third_backend_serves_without_populating_again(platform, real, rewrite_config, run_deploy, ssh):
    try:
        assert rewrite_config(backends=["a", "b", "c"]).returncode == 0
        result = deploy_ok(platform, run_deploy)
        third = f"{platform.prefix}-backend-c"
        assert third in result.changed
        status, _ = get(platform.address(third), REPORT)
        assert status == 200
        assert counts(platform, ssh) == real["counts"]
    finally:
        assert rewrite_config().returncode == 0  # back to a and b (removes c, with --yes)


def test_a_commit_whose_requirements_lack_psycopg2_gets_it_and_serves(platform, real, rewrite_config, run_deploy, ssh):
    lacking = "d1addfe"  # Sprint2's requirements.txt has no psycopg2 at this commit
    try:
        assert rewrite_config(app_ref=lacking).returncode == 0
        deploy_ok(platform, run_deploy)
        for name in platform.names("backend"):
            code, _ = ssh(name, "grep -qi psycopg2 /srv/sprint2/current/requirements.txt")
            assert code != 0, "the commit is expected to lack psycopg2"
            code, out = ssh(name, "/srv/sprint2/current/.venv/bin/python -c 'import psycopg2, gunicorn; print(1)'")
            assert out.strip() == "1", out
            assert get(platform.address(name), REPORT)[0] == 200
    finally:
        assert rewrite_config().returncode == 0
    deploy_ok(platform, run_deploy)


def test_an_unreachable_app_repo_is_one_line_naming_it(platform, real, rewrite_config, run_deploy):
    missing = platform.app_repo.sprint2_url.replace("sprint2.git", "missing.git")
    try:
        assert rewrite_config(app_repo=missing).returncode == 0
        result = run_deploy("--limit", "backends")
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if f"cannot read app_repo {missing}" in line]
        assert len(lines) == len(platform.names("backend")), result.stderr[-3000:]
        assert "check that this host can reach it" in lines[0]
        assert "Traceback" not in result.output
    finally:
        assert rewrite_config().returncode == 0


# --- exactly-once populate, interrupted -------------------------------------------------------


def reset_population(platform, ssh):
    """The database as it was right after migrate: empty tables, no populate marker."""
    db = platform.names("db")[0]
    sql(
        ssh, db, f"TRUNCATE {', '.join(TABLES)} CASCADE; DELETE FROM sprint2_deploy_marker WHERE name LIKE 'populate:%'"
    )


def kill_the_populate_on_the_host(platform, ssh):
    """What a lost host or a killed process does to the populate: its session dies mid-transaction."""
    setup_backend = platform.names("backend")[0]
    # [.]: the pattern must not match this very command's shell.
    ssh(setup_backend, "pkill -KILL -f 'deploy_marker[.]py once' ; true")


@pytest.mark.parametrize(
    "where, table, how",
    [
        ("in populate.py", "pedidos_pedido", "SIGKILL of pyinfra and of the populate on the host"),
        ("in populate.py", "pedidos_pedido", "SIGINT of pyinfra only"),
        ("in populateDespachos.py", "despachos_despacho", "SIGKILL of pyinfra and of the populate on the host"),
    ],
)
def test_an_interrupted_populate_leaves_the_counts_of_a_clean_run_after_a_re_run(
    platform, real, run_deploy, ssh, where, table, how
):
    reset_population(platform, ssh)
    with TableLock(platform, ssh, table) as lock:
        deploy = platform.start_deploy("--limit", platform.names("backend")[0])
        try:
            lock.wait_for_a_blocked_writer()
            if how.startswith("SIGKILL"):
                os.killpg(deploy.pid, signal.SIGKILL)
                kill_the_populate_on_the_host(platform, ssh)
            else:
                os.killpg(deploy.pid, signal.SIGINT)
        finally:
            killed = how.startswith("SIGKILL")
            try:
                deploy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(deploy.pid, signal.SIGKILL)  # Ctrl-C did not end it: as a dead run
                killed = True
                deploy.wait(timeout=60)
    # Whatever the populate left running finishes or is gone: never half its rows.
    time.sleep(3)
    after = counts(platform, ssh)
    markers = populate_markers(platform, ssh)
    if where == "in populate.py" and how.startswith("SIGKILL"):
        assert after == dict.fromkeys(after, 0) and markers == [""], (after, markers)
    elif where == "in populate.py":
        # The populate left running on the host finished (both committed) or had not yet (neither).
        assert (after["pedidos_pedido"], markers) in [(0, [""]), (5000, [POPULATE])], (after, markers)
    else:
        # populate.py had committed (rows and marker); populateDespachos.py had not (neither).
        assert after["pedidos_pedido"] == 5000 and after["despachos_despacho"] == 0, after
        assert markers == [POPULATE]
    # Ctrl-C: pyinfra gave the deploy lock back as it ended; SIGKILL: its session ended with its
    # connection. Either way nothing is left to unlock.
    deadline = time.monotonic() + 10
    while deploy_lock(ssh, platform.names("db")[0]) != {"host": None, "advisory": None}:
        assert time.monotonic() < deadline, f"the deploy lock is still held after {how} (killed: {killed})"
        time.sleep(0.2)
    assert "no deploy lock is held" in platform.provision("unlock").stdout
    deploy_ok(platform, run_deploy)
    final = counts(platform, ssh)
    # As after one clean run: every product and order once, one dispatch per dispatched order
    # (which orders are dispatched is random in populate.py, so that count itself varies).
    assert (final["pedidos_producto"], final["pedidos_pedido"]) == (
        real["counts"]["pedidos_producto"],
        real["counts"]["pedidos_pedido"],
    ), final
    assert final["despachos_despacho"] == final["despachado"] > 0, final
    assert populate_markers(platform, ssh) == [POPULATE, DESPACHOS]
    print(f"\ninterrupted {where} ({how}): after the interruption {after}, after the re-run {final}")


# --- moving to a commit whose models changed ----------------------------------------------------


def test_moving_to_a_commit_with_changed_models_fails_in_one_line_and_nothing_moves(
    platform, real, rewrite_config, run_deploy, ssh
):
    before = counts(platform, ssh)
    pids = {
        name: ssh(name, "systemctl show -p MainPID --value sprint2-app")[1].strip()
        for name in platform.names("backend")
    }
    try:
        assert rewrite_config(app_ref=MODELS_CHANGED).returncode == 0
        started = time.monotonic()
        result = run_deploy()
        took = time.monotonic() - started
        setup_backend = platform.names("backend")[0]
        assert setup_backend in result.failed_hosts
        lines = [line for line in result.stderr.splitlines() if "cannot set the database up" in line]
        assert len(lines) >= 1, result.stderr[-4000:]
        assert (
            "makemigrations --noinput failed (exit 3): Field 'descripcion' on model 'producto' not migrated: "
            "it is impossible to add a non-nullable field without specifying a default"
        ) in lines[0], lines[0]
        print(f"\nmove to {MODELS_CHANGED}: failed in {took:.0f} s with: {lines[0].strip()}")
        assert took < 600
        # Nothing lost, nothing moved, nothing restarted.
        assert counts(platform, ssh) == before
        for name in platform.names("backend"):
            assert ssh(name, RUNNING)[1].strip() == WORKING, name
            assert ssh(name, "systemctl show -p MainPID --value sprint2-app")[1].strip() == pids[name], name
            status, _ = get(platform.address(name), REPORT)
            assert status == 200, name
            assert ssh(name, "readlink -f /srv/sprint2/current")[1].strip().endswith(WORKING), name
    finally:
        assert rewrite_config().returncode == 0
    result = deploy_ok(platform, run_deploy)
    result.assert_no_changes(hosts=platform.names("db") + platform.names("backend"))
