"""provision.py backup with db_service rds: pg_dump through the setup backend (exact argv)."""

import shlex
import subprocess

import pytest

from stack.errors import UserError
from stack.operate.managed_dump import dump_command
from stack.settings import settings_from
from stack.state import Host, State

DATABASE = {
    "service": "rds",
    "identifier": "des-rds",
    "address": "10.77.0.10",
    "port": 5432,
    "master_user": "sprint2admin",
    "ca_bundle_pem": "PEM",
}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path))
    (tmp_path / "ssh").mkdir()
    key = tmp_path / "ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "ssh" / "id_ed25519.pub").read_text().split()
    (tmp_path / "ssh" / "known_hosts").write_text(
        "".join(f"10.77.0.{last} {public[0]} {public[1]}\n" for last in (20, 21))
    )
    return tmp_path


def backend(address, home):
    return Host("backend", address, address, "ubuntu", key=address[-1], ssh_key=str(home / "ssh" / "id_ed25519"))


def test_the_dump_runs_on_the_first_backend_as_the_app_role_without_the_history(home):
    state = State(
        "local",
        "des",
        hosts={"des-backend-b": backend("10.77.0.21", home), "des-backend-a": backend("10.77.0.20", home)},
        database=DATABASE,
    )
    name, argv = dump_command(state, settings_from({"db_service": "rds"}))
    assert name == "des-rds (through des-backend-a)"
    assert argv[-2] == "ubuntu@10.77.0.20"
    script = shlex.split(argv[-1])[-1]
    assert script.endswith(
        "exec runuser -u sprint2 -- pg_dump 'host=10.77.0.10 port=5432 dbname=dispatch_db user=dispatch_user "
        "sslmode=verify-full sslrootcert=/etc/sprint2/database-ca.pem' --format=custom --exclude-schema=sprint2_deploy"
    )


def test_without_a_recorded_database_it_says_to_provision(home):
    state = State("local", "des", hosts={"des-backend-a": backend("10.77.0.20", home)})
    with pytest.raises(UserError, match=r"no database is recorded in the state: run python provision\.py"):
        dump_command(state, settings_from({"db_service": "rds"}))
