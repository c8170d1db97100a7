"""status: the probe each host runs, how its answer is read, and the one-screen report."""

import json
import shlex

from stack.operate.hosts import Target
from stack.operate.probe import BACKUP_LATEST, parse, probe_script
from stack.operate.status import Answer, render, report
from stack.settings import settings_from

COMMON = {
    "now": "1700000000",
    "uptime_s": "93784",
    "disk_used_kb": "2621440",
    "disk_size_kb": "10485760",
    "mem_total_kb": "1048576",
    "mem_available_kb": "524288",
}
HEALTH = {
    "data": [
        {"target": "10.0.0.20:8080", "weight": 100, "health": "HEALTHY"},
        {"target": "10.0.0.21:8080", "weight": 100, "health": "HEALTHY"},
    ],
    "next": None,
}
SERVICES = {
    "data": [
        {
            "name": "backend-service",
            "protocol": "http",
            "host": "backend-cluster",
            "retries": 5,
            "connect_timeout": 60000,
            "read_timeout": 60000,
            "write_timeout": 60000,
        }
    ]
}
PLUGINS = {"data": [{"name": "rate-limiting", "enabled": True}, {"name": "correlation-id", "enabled": True}]}
STATUS = {"server": {"total_requests": 42, "connections_active": 1}, "database": {"reachable": True}}
CONFIG_SHA256 = "ab12" * 16


def kong_facts(health=HEALTH, **changes):
    return {
        **COMMON,
        "container": "running",
        "config_sha256": CONFIG_SHA256,
        "kong_health": json.dumps(health),
        "kong_services": json.dumps(SERVICES),
        "kong_plugins": json.dumps(PLUGINS),
        "kong_status": json.dumps(STATUS),
        **changes,
    }


def healthy_answers():
    backend = {**COMMON, "service": "active", "commit": "0123456789abcdef0123", "health": "200"}
    return [
        Answer("des-backend-a", "backend", "198.51.100.20", backend),
        Answer("des-backend-b", "backend", "198.51.100.21", backend),
        Answer(
            "des-db",
            "db",
            "198.51.100.10",
            {
                **COMMON,
                "connections": "3/2000",
                "backup": "/var/backups/postgresql/dispatch_db-x.sql.gz",
                "backup_time": str(1700000000 - 5 * 3600 - 120),
            },
        ),
        Answer("des-kong", "kong", "198.51.100.11", kong_facts()),
    ]


def test_everything_healthy_on_one_screen():
    data = report(healthy_answers())
    assert data["healthy"] is True and data["problems"] == []
    assert render(data, "/health-check/") == "\n".join(
        [
            "HOSTS",
            "  des-backend-a  198.51.100.20    up   1d2h  disk 25% of 10.0G  memory 50% of 1.0G",
            "  des-backend-b  198.51.100.21    up   1d2h  disk 25% of 10.0G  memory 50% of 1.0G",
            "  des-db         198.51.100.10    up   1d2h  disk 25% of 10.0G  memory 50% of 1.0G",
            "  des-kong       198.51.100.11    up   1d2h  disk 25% of 10.0G  memory 50% of 1.0G",
            "BACKENDS  (sprint2-app.service, GET /health-check/)",
            "  des-backend-a  active    commit 0123456789ab  health 200",
            "  des-backend-b  active    commit 0123456789ab  health 200",
            "DATABASE  des-db",
            "  PostgreSQL up, 3 of 2000 connections used",
            "  last backup /var/backups/postgresql/dispatch_db-x.sql.gz, 5h02m old",
            "KONG  des-kong",
            "  container kong: running",
            "  target 10.0.0.20:8080  HEALTHY  (weight 100)",
            "  target 10.0.0.21:8080  HEALTHY  (weight 100)",
            "  service backend-service: http://backend-cluster, retries 5, timeouts connect/read/write 60000/60000/60000 ms",
            "  plugins: correlation-id, rate-limiting",
            "  gateway /status: total requests 42, connections active 1, database reachable True",
            "  config kong.yml sha256 ab12ab12ab12",
            "all healthy",
        ]
    )


def test_each_problem_is_marked_and_named():
    answers = healthy_answers()
    answers[1] = Answer(
        "des-backend-b",
        "backend",
        "198.51.100.21",
        {
            **COMMON,
            "service": "inactive",
            "commit": "0123456789abcdef0123",
            "health": "no answer: [Errno 111] Connection refused",
        },
    )
    answers[2] = Answer(
        "des-db",
        "db",
        "198.51.100.10",
        {
            **COMMON,
            "disk_used_kb": "9961472",
            "connections": "1900/2000",
            "backup": "/b/old.sql.gz",
            "backup_time": "1699800000",
        },
    )
    unhealthy = {"data": [HEALTH["data"][0], {**HEALTH["data"][1], "health": "UNHEALTHY"}]}
    answers[3] = Answer("des-kong", "kong", "198.51.100.11", kong_facts(unhealthy))
    data = report(answers)
    assert data["problems"] == [
        "des-backend-b: sprint2-app is inactive",
        "des-backend-b: health check: no answer: [Errno 111] Connection refused",
        "des-db: disk 95% used",
        "des-db: 1900 of 2000 connections used",
        "des-db: last backup is 2d7h old",
        "des-kong: Kong sees 10.0.0.21:8080 not HEALTHY",
    ]
    marked = [line for line in render(data, "/").splitlines() if line.startswith("!")]
    assert marked == [
        "! des-db         198.51.100.10    up   1d2h  disk 95% of 10.0G  memory 50% of 1.0G",
        "! des-backend-b  inactive  commit 0123456789ab  health no answer: [Errno 111] Connection refused",
        "! PostgreSQL up, 1900 of 2000 connections used",
        "! last backup /b/old.sql.gz, 2d7h old",
        "! target 10.0.0.21:8080  UNHEALTHY  (weight 100)",
    ]
    assert render(data, "/").splitlines()[-1] == (
        "UNHEALTHY: des-backend-b, des-db, des-kong (the lines marked !; --json lists each problem)"
    )


def test_what_could_not_be_read_is_said_and_counts():
    answers = healthy_answers()
    answers[0] = Answer("des-backend-a", "backend", "198.51.100.20", {}, "des-backend-a (...) does not answer (x)")
    answers[3] = Answer(
        "des-kong",
        "kong",
        "198.51.100.11",
        {
            **COMMON,
            "container": "absent",
            **{
                f"kong_{key}_error": "<urlopen error [Errno 111] Connection refused>"
                for key in ("health", "services", "plugins", "status")
            },
        },
    )
    data = report(answers)
    text = render(data, "/")
    assert "! des-backend-a  198.51.100.20    does not answer: des-backend-a (...) does not answer (x)" in text
    assert "! des-backend-a  not read (host does not answer)" in text
    assert (
        "! container kong: absent\n! admin API: could not read it (<urlopen error [Errno 111] Connection refused>)\n"
        "! config: no /opt/kong/declarative/kong.yml\n" in text
    )
    assert data["problems"] == [
        "des-backend-a: does not answer: des-backend-a (...) does not answer (x)",
        "des-kong: container absent",
        "des-kong: no /opt/kong/declarative/kong.yml",
        "des-kong: admin API not read: <urlopen error [Errno 111] Connection refused>",
    ]
    assert json.loads(json.dumps(data)) == data  # --json prints exactly this


def kong_nodes(*hashes):
    return [
        Answer(f"des-kong{'' if node == 1 else f'-{node}'}", "kong", f"198.51.100.{10 + node}", kong_facts(**digest))
        for node, digest in enumerate(({"config_sha256": value} for value in hashes), start=1)
    ]


def test_every_kong_node_is_shown_with_its_config_hash():
    data = report(healthy_answers()[:3] + kong_nodes(CONFIG_SHA256, CONFIG_SHA256))
    assert data["healthy"] is True
    text = render(data, "/")
    for node in ("des-kong", "des-kong-2"):
        assert f"KONG  {node}\n  container kong: running\n" in text
    assert text.count("  config kong.yml sha256 ab12ab12ab12\n") == 2


def test_the_node_whose_config_differs_is_named():
    other = "cd34" * 16
    data = report(healthy_answers()[:3] + kong_nodes(CONFIG_SHA256, other, CONFIG_SHA256))
    assert data["problems"] == [
        "des-kong-2: serves another kong.yml (sha256 cd34cd34cd34) than the other nodes (ab12ab12ab12)"
    ]
    marked = [line for line in render(data, "/").splitlines() if line.startswith("!")]
    assert marked == ["! config kong.yml sha256 cd34cd34cd34 (differs from the other nodes)"]


def test_two_nodes_that_disagree_are_both_named():
    data = report(healthy_answers()[:3] + kong_nodes(CONFIG_SHA256, "cd34" * 16))
    assert data["problems"] == [
        "des-kong: serves another kong.yml (sha256 ab12ab12ab12) than the other nodes (no two nodes agree)",
        "des-kong-2: serves another kong.yml (sha256 cd34cd34cd34) than the other nodes (no two nodes agree)",
    ]


def test_a_fresh_database_without_a_backup_is_not_a_problem():
    answers = healthy_answers()
    answers[2] = Answer("des-db", "db", "198.51.100.10", {**COMMON, "connections": "1/2000"})
    data = report(answers)
    assert data["healthy"] is True
    assert "  no backup yet (the daily timer writes the first at 03:15)" in render(data, "/")


def test_probe_answers_are_key_value_lines():
    assert parse("now=1\nnoise line\nhealth=no answer: a=b\n\ncontainer=running\n") == {
        "now": "1",
        "health": "no answer: a=b",
        "container": "running",
    }


def test_probes_read_the_units_and_files_the_deploy_writes():
    settings = settings_from({"gateway": {"health_path": "/health-check/", "admin_port": 8101}})
    backend = Target("des-backend-a", "backend", "198.51.100.20", "ubuntu", "/k", "/kh", 22, "10.0.0.20")
    script = probe_script(backend, settings)
    assert script.startswith("sudo -n sh -c ")
    assert "systemctl is-active sprint2-app.service" in script
    assert "pid=$(systemctl show -p MainPID --value sprint2-app.service)" in script
    assert 'echo commit=$(basename "$(readlink /proc/${pid:-0}/cwd 2>/dev/null)" 2>/dev/null)' in script
    assert "10.0.0.20 8080 /health-check/" in script
    db = probe_script(Target("des-db", "db", "10.0.0.10", "root", "/k", "/kh", 22, "10.0.0.10"), settings)
    assert not db.startswith("sudo") and "/var/backups/postgresql/dispatch_db-*.sql.gz" in db
    assert "runuser -u postgres -- psql -XAtq -d postgres" in db and "show max_connections" in db
    # The backup folder is postgres's: root lists nothing there.
    lines = shlex.split(db)[2].splitlines()
    latest = BACKUP_LATEST.format(pattern="/var/backups/postgresql/dispatch_db-*.sql.gz")
    assert [line for line in lines if "/var/backups" in line] == [f"runuser -u postgres -- sh -c {shlex.quote(latest)}"]
    kong = probe_script(Target("des-kong", "kong", "10.0.0.11", "root", "/k", "/kh", 22, "10.0.0.11"), settings)
    assert "docker inspect --format '\"'\"'{{.State.Status}}'\"'\"' kong" in kong
    assert "echo config_sha256=$(sha256sum /opt/kong/declarative/kong.yml 2>/dev/null | cut -d" in kong
    assert "8101" in kong and "/upstreams/backend-cluster/health" in kong and '"status":"/status"' in kong


def test_the_local_rds_stand_in_is_a_host_that_answers_and_nothing_more():
    answers = [answer for answer in healthy_answers() if answer.role != "db"]
    answers.append(Answer("des-rds", "rds", "10.77.0.10", dict(COMMON)))
    data = report(answers)
    assert data["healthy"] is True and data["problems"] == []
    lines = render(data, "/health-check/").splitlines()
    assert "  des-rds        10.77.0.10       up   1d2h  disk 25% of 10.0G  memory 50% of 1.0G" in lines
    assert not any(line.startswith("DATABASE") for line in lines)


def test_each_backend_names_the_lock_its_virtualenv_was_built_from():
    answers = healthy_answers()
    answers[0] = Answer("des-backend-a", "backend", "198.51.100.20", {**answers[0].facts, "lock": "3fc94030a0fb0095"})
    data = report(answers)
    assert data["hosts"]["des-backend-a"]["backend"]["lock"] == "3fc94030a0fb0095"
    assert data["hosts"]["des-backend-b"]["backend"]["lock"] is None
    text = render(data, "/health-check/").splitlines()
    assert "  des-backend-a  active    commit 0123456789ab  health 200  lock 3fc94030a0fb0095" in text
