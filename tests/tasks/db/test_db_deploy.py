"""deploy_db on a fake host: a fresh host, a converged one, and changed settings or backends."""

import hashlib
import re

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File

from stack.secrets import scram_verifier, verifier_matches
from stack.settings import settings_from
from tasks.db.backup_render import backup_script, backup_service, backup_timer
from tasks.db.commands import RELOAD_OR_RESTART, write_as_postgres
from tasks.db.deploy import deploy_db
from tasks.db.facts import PostgresCluster, PostgresDatabaseOwner, PostgresRolePassword
from tasks.db.history import HistoryRole
from tasks.db.render import pg_hba_conf, pg_ident_conf, postgresql_conf
from tasks.units import UnitStates
from tasks.uploads import FileSummaries, FileSummary
from tests.harness import file_summaries, per_path, run_deploy

SECRETS = {
    "db_password": "correct-horse-battery-staple",
    "django_secret_key": "k" * 40,
    "db_history_password": "history-horse-battery-staple",
}
DB_IP = "10.0.1.10"
TWO = [("des-backend-a", {"private_ip": "10.0.1.11"}), ("des-backend-b", {"private_ip": "10.0.1.12"})]
FOLDER = "/etc/postgresql/16/main"
CONF = f"{FOLDER}/conf.d/90-deploy.conf"
HBA = f"{FOLDER}/pg_hba.conf"
IDENT = f"{FOLDER}/pg_ident.conf"
BACKUP_FILES = {
    "/usr/local/sbin/sprint2-db-backup": (backup_script("dispatch_db", 7), 755, "root"),
    "/etc/systemd/system/sprint2-db-backup.service": (backup_service("dispatch_db"), 644, "root"),
    "/etc/systemd/system/sprint2-db-backup.timer": (backup_timer("dispatch_db"), 644, "root"),
}
PARENTS = {
    f"path={path}": {"mode": 755, "user": "root", "group": "root"}
    for path in ("/usr/local/sbin", "/etc/systemd/system")
}
PG = "postgresql"
PG_UNITS = "units=['postgresql.service']"
TIMER = "units=['sprint2-db-backup.timer']"
UP = [{"running": True, "enabled": True}]
DOWN = [{"running": False, "enabled": False}]
OPS = [
    "Ensure PostgreSQL is installed",
    "Configure PostgreSQL's listen address, connections and memory",
    "Allow the app user in from the backends only (pg_hba.conf)",
    "Let provision.py psql log in as the app role itself (pg_ident.conf)",
    "Reload PostgreSQL, restarting it only for settings that need it",
    "Ensure PostgreSQL is running and starts at boot",
    "Ensure the role dispatch_user exists with its password",
    "Ensure the database dispatch_db exists",
    "Ensure the role sprint2_deploy owning the migration history exists with its password",
    "Ensure the backup folder is private to postgres",
    "Install the backup script",
    "Install the backup service",
    "Install the daily backup timer",
    "Reload systemd for the backup units",
    "Ensure the daily backup timer is enabled and running",
]


def regular(text, mode, user="postgres"):
    """A regular file of the cluster's folder, as PostgresCluster reports it."""
    return {
        "type": "regular file",
        "user": user,
        "group": user,
        "mode": mode,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def cluster(files):
    """PostgresCluster's answer for 16/main with these files ({name in the folder: state})."""
    return {"version": "16", "status": "online", "config_dir": FOLDER, "files": files}


def fresh_host():
    """No PostgreSQL package yet. The operations after the install read the host when they run,
    so they are answered with what the install leaves: cluster 16/main with the distro's pg_hba.conf
    and pg_ident.conf."""
    return {
        DebPackages: {},
        PostgresCluster: cluster({"pg_hba.conf": regular("distro", 640), "pg_ident.conf": regular("distro", 640)}),
        File: {f"path={path}": None for path in BACKUP_FILES},
        **per_path(FileSummary, FileSummaries, file_summaries(dict.fromkeys(BACKUP_FILES))),
        Directory: {"path=/var/backups/postgresql": None, **PARENTS, **{f"path={path}": None for path in BACKUP_FILES}},
        UnitStates: {PG_UNITS: DOWN, TIMER: DOWN},
        PostgresRolePassword: {"role=dispatch_user": None},
        PostgresDatabaseOwner: {"database=dispatch_db": None},
        HistoryRole: {"database=dispatch_db, role=sprint2_deploy": None},
    }


def installed_host(conf_text, hba_text, ident_text, verifier):
    """PostgreSQL 16 installed and configured with these files and this role verifier."""
    return {
        DebPackages: {"postgresql": {"16+257build1"}, "gzip": {"1.12-1ubuntu3"}},
        PostgresCluster: cluster(
            {
                "conf.d/90-deploy.conf": regular(conf_text, 644),
                "pg_hba.conf": regular(hba_text, 640),
                "pg_ident.conf": regular(ident_text, 640),
            }
        ),
        File: {
            f"path={path}": {"mode": mode, "user": user, "group": user, "size": len(text)}
            for path, (text, mode, user) in BACKUP_FILES.items()
        },
        Sha1File: {
            f"path={path}": hashlib.sha1(text.encode()).hexdigest() for path, (text, _, _) in BACKUP_FILES.items()
        },
        **per_path(
            FileSummary,
            FileSummaries,
            file_summaries({path: (text, mode, user, user) for path, (text, mode, user) in BACKUP_FILES.items()}),
        ),
        Directory: {"path=/var/backups/postgresql": {"mode": 700, "user": "postgres", "group": "postgres"}, **PARENTS},
        UnitStates: {PG_UNITS: UP, TIMER: UP},
        PostgresRolePassword: {"role=dispatch_user": verifier},
        PostgresDatabaseOwner: {"database=dispatch_db": "dispatch_user"},
        HistoryRole: {
            "database=dispatch_db, role=sprint2_deploy": {
                "verifier": scram_verifier(SECRETS["db_history_password"], b"another-salt", 4096),
                "create": True,
            }
        },
    }


def converged(settings, backends=TWO, password=SECRETS["db_password"]):
    return installed_host(
        postgresql_conf(DB_IP, settings.max_connections),
        pg_hba_conf(settings.db_name, settings.db_user, [data["private_ip"] for _, data in backends], "sprint2_deploy"),
        pg_ident_conf(settings.db_user),
        scram_verifier(password, b"salt-from-server", 4096),
    )


def deploy(facts, settings=None, backends=TWO, secrets=SECRETS):
    return run_deploy(
        deploy_db,
        facts=facts,
        groups=["db"],
        host_data={"private_ip": DB_IP, "name": "des-db"},
        other_hosts={"backends": backends},
        kwargs={"settings": settings or settings_from({}), "secrets": secrets},
    )


def test_fresh_host_installs_configures_and_creates_role_and_database():
    facts = fresh_host()
    run = deploy(facts)
    assert run.names == OPS
    # On a fresh host the cluster's files are decided once the install ran; the harness answers
    # facts as they were, so the installed state is simulated by the next tests.
    assert (
        "apt-get -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install postgresql gzip"
        in run.op("Ensure PostgreSQL is installed").commands[-1]
    )
    assert any(
        "apt-get -q -o DPkg::Lock::Timeout=600 update" in command
        for command in run.op("Ensure PostgreSQL is installed").commands
    )
    role = run.op("Ensure the role dispatch_user exists with its password")
    (command,) = role.commands
    verifier = re.fullmatch(
        r"cd / && psql -X -v ON_ERROR_STOP=1 -tA -c "
        r"'CREATE ROLE dispatch_user WITH LOGIN PASSWORD '\"'\"'(SCRAM-SHA-256\$4096:[^$]+\$[^']+)'\"'\"''",
        command,
    ).group(1)
    assert verifier_matches(verifier, SECRETS["db_password"])
    assert role.global_arguments["_sudo_user"] == "postgres"
    assert run.op("Ensure the database dispatch_db exists").commands == [
        "cd / && createdb --owner=dispatch_user dispatch_db"
    ]
    assert run.changed == OPS
    assert run.op(OPS[1]).commands == [write_as_postgres(CONF, postgresql_conf(DB_IP, 2000), "644")]
    assert run.op(OPS[3]).commands == [write_as_postgres(IDENT, pg_ident_conf("dispatch_user"), "640")]
    assert run.op(OPS[4]).commands == [RELOAD_OR_RESTART]


def test_the_password_never_reaches_a_command():
    facts = fresh_host()
    run = deploy(facts)
    assert not [command for command in run.commands if SECRETS["db_password"] in command]


def test_installed_cluster_gets_the_files_from_its_own_version_folder_and_a_reload():
    settings = settings_from({})
    facts = converged(settings)
    files = facts[PostgresCluster]["files"]
    del files["conf.d/90-deploy.conf"]
    files["pg_hba.conf"] = regular("other", 640)
    run = deploy(facts, settings)
    conf = run.op("Configure PostgreSQL's listen address, connections and memory")
    assert conf.commands == [write_as_postgres(CONF, postgresql_conf(DB_IP, 2000), "644")]
    hba = run.op("Allow the app user in from the backends only (pg_hba.conf)")
    assert hba.commands == [
        write_as_postgres(
            HBA, pg_hba_conf("dispatch_db", "dispatch_user", ["10.0.1.11", "10.0.1.12"], "sprint2_deploy"), "640"
        )
    ]
    assert run.op("Reload PostgreSQL, restarting it only for settings that need it").commands == [RELOAD_OR_RESTART]
    assert run.changed == [OPS[1], OPS[2], OPS[4]]


def test_the_cluster_files_are_written_as_postgres_and_a_planted_link_is_replaced():
    """Root never writes in postgres's folder: what postgres planted there reaches only what
    postgres could change anyway, and a link is replaced by the file (renamed over it)."""
    settings = settings_from({})
    facts = converged(settings)
    files = facts[PostgresCluster]["files"]
    files["pg_hba.conf"] = {"type": "symbolic link", "user": "postgres", "group": "postgres", "mode": 777}
    files["pg_ident.conf"] = regular(pg_ident_conf("dispatch_user"), 640, user="root")
    run = deploy(facts, settings)
    assert run.changed == [OPS[2], OPS[3], OPS[4]]
    for name in OPS[1:4]:
        assert run.op(name).global_arguments == {"_sudo": True, "_sudo_user": "postgres"}, name
        assert run.op(name).uploads == {}
    (command,) = run.op(OPS[2]).commands
    assert f'mv -fT -- "$temp" {HBA}' in command
    assert not [command for command in run.commands if command.startswith(("chown", "chmod"))]


def test_converged_host_changes_nothing():
    settings = settings_from({})
    run = deploy(converged(settings), settings)
    assert run.names == OPS
    assert run.changed == []


def test_a_new_backend_rewrites_pg_hba_and_reloads_only():
    settings = settings_from({})
    three = TWO + [("des-backend-c", {"private_ip": "10.0.1.13"})]
    run = deploy(converged(settings, backends=TWO), settings, backends=three)
    assert run.changed == [OPS[2], OPS[4]]
    (command,) = run.op(OPS[2]).commands
    uploaded = pg_hba_conf("dispatch_db", "dispatch_user", ["10.0.1.11", "10.0.1.12", "10.0.1.13"], "sprint2_deploy")
    assert command == write_as_postgres(HBA, uploaded, "640")
    assert re.findall(r"^host +dispatch_db +dispatch_user +(\S+)/32 +scram-sha-256$", uploaded, re.M) == [
        "10.0.1.11",
        "10.0.1.12",
        "10.0.1.13",
    ]


def test_changed_max_connections_rewrites_the_conf_and_lets_postgres_decide_on_a_restart():
    before = settings_from({})
    after = settings_from({"max_connections": 500})
    run = deploy(converged(before), after)
    assert run.changed == [OPS[1], OPS[4]]
    assert "max_connections = 500" in run.op(OPS[1]).commands[0]
    assert "pending_restart" in run.op(OPS[4]).commands[0]


def test_a_changed_password_alters_the_role_with_a_new_verifier():
    settings = settings_from({})
    facts = converged(settings, password="the-old-password-0000")
    run = deploy(facts, settings)
    assert run.changed == ["Ensure the role dispatch_user exists with its password"]
    (command,) = run.op("Ensure the role dispatch_user exists with its password").commands
    assert "ALTER ROLE dispatch_user WITH LOGIN PASSWORD" in command
    verifier = re.search(r"SCRAM-SHA-256\$[^']+", command).group(0)
    assert verifier_matches(verifier, SECRETS["db_password"])


def test_changed_backup_keep_rewrites_the_script_only():
    before = settings_from({})
    run = deploy(converged(before), settings_from({"backup_keep": 3}))
    assert run.changed == ["Install the backup script"]
    assert "tail -n +4" in run.op("Install the backup script").uploads["/usr/local/sbin/sprint2-db-backup"]


def test_the_cluster_and_its_files_are_read_once_for_all_of_its_files():
    settings = settings_from({})
    run = run_deploy(
        deploy_db,
        facts=converged(settings),
        groups=["db"],
        host_data={"private_ip": DB_IP, "name": "des-db"},
        other_hosts={"backends": TWO},
        kwargs={"settings": settings, "secrets": SECRETS},
        yes=True,
    )
    assert run.changed == []
    assert sum(call.startswith(f"{PostgresCluster.name}(") for call in run.fact_calls) == 1
