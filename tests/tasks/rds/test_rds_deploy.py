"""deploy_backend with db_service rds on a fake host: the CA bundle, TLS in the app's settings and
the history's login, and the master user's roles step on the setup backend only when a setup is
due (its credentials in a root-only file for that step only)."""

import json
import shlex

from stack.secrets import verifier_matches
from tasks.backend.commands import ROOT_SCRIPT
from tasks.backend.facts import HttpStatus
from tests.tasks.backend.test_backend_deploy import (
    CA_BUNDLE,
    DATABASE,
    ME,
    NEW,
    SECRETS,
    SETUP,
    base,
    deploy,
    host_facts,
    kept_locks,  # noqa: F401 (autouse: the controller keeps both commits' locks)
)

SECRETS_RDS = {**SECRETS, "rds_master_password": "master-horse-battery-staple"}
ROLES = "Ensure the app's role and database exist on the managed database (master user, setup only)"
OTHERS = {"backends": [("des-backend-b", {"private_ip": "10.0.1.12", "name": "des-backend-b", "database": DATABASE})]}
MASTER = "/etc/sprint2/database-master.json"


def rds_deploy(facts, settings):
    return deploy(facts, settings, me={**ME, "database": DATABASE}, others=OTHERS, secrets=SECRETS_RDS)


def test_a_converged_backend_on_rds_changes_nothing_and_sends_no_master_credentials():
    settings = base({"db_service": "rds"})
    run = rds_deploy(host_facts(settings), settings)
    assert run.changed == []
    assert run.has(ROLES) and run.op(ROLES).commands == []
    assert run.has("Install the database's CA certificate")


def test_a_fresh_backend_on_rds_makes_the_roles_with_the_master_user_then_sets_up_over_tls():
    settings = base({"db_service": "rds"})
    run = rds_deploy(host_facts(settings, installed=False, commit=None, remote=NEW, populated=False), settings)
    assert run.op("Install the database's CA certificate").uploads == {CA_BUNDLE: DATABASE["ca_bundle_pem"]}
    install, upload, move, roles = run.op(ROLES).commands
    assert install == f"install -m 600 -o root -g root /dev/null {MASTER}.new"
    assert upload == f"upload {MASTER}.new" and move == f"mv -f {MASTER}.new {MASTER}"
    assert roles == (
        f"trap 'rm -f {MASTER}' EXIT; cd / && /usr/bin/python3 -I -c {shlex.quote(ROOT_SCRIPT)} "
        f"/etc/sprint2/conf/rds_roles.py {MASTER}"
    )
    login = json.loads(run.op(ROLES).uploads[f"{MASTER}.new"])
    verifiers = {key: login.pop(key) for key in ("owner_verifier", "history_verifier")}
    assert login == {
        "host": "10.0.1.9",
        "port": 5432,
        "sslrootcert": CA_BUNDLE,
        "master_user": "sprint2admin",
        "master_password": SECRETS_RDS["rds_master_password"],
        "database": "dispatch_db",
        "owner": "dispatch_user",
        "owner_password": SECRETS["db_password"],
        "history_role": "sprint2_deploy",
        "history_password": SECRETS["db_history_password"],
    }
    assert verifier_matches(verifiers["owner_verifier"], SECRETS["db_password"])
    assert verifier_matches(verifiers["history_verifier"], SECRETS["db_history_password"])
    history = json.loads(run.op(SETUP).uploads["/etc/sprint2/migration-history.json.new"])
    assert history == {
        "host": "10.0.1.9",
        "port": 5432,
        "dbname": "dispatch_db",
        "user": "sprint2_deploy",
        "password": SECRETS["db_history_password"],
        "sslmode": "verify-full",
        "sslrootcert": CA_BUNDLE,
    }
    assert run.names.index(ROLES) < run.names.index(SETUP)


def test_a_new_commit_on_rds_checks_the_roles_before_its_setup():
    settings = base({"db_service": "rds"})
    run = rds_deploy(host_facts(settings, remote=NEW), settings)
    assert run.op(ROLES).changes and run.op(SETUP).changes


def test_the_second_backend_never_gets_the_master_credentials():
    settings = base({"db_service": "rds"})
    me = {"private_ip": "10.0.1.12", "name": "des-backend-b", "ssh_hostname": "3.80.1.12", "database": DATABASE}
    others = {
        "backends": [("des-backend-a", {"private_ip": "10.0.1.11", "name": "des-backend-a", "database": DATABASE})]
    }
    facts = host_facts(settings, remote=NEW)
    facts[HttpStatus] = {f"address=10.0.1.12, path={settings.gateway.health_path}, port=8080": 200}
    run = deploy(facts, settings, me=me, others=others, secrets=SECRETS_RDS)
    assert not run.has(ROLES) and not run.has(SETUP)
