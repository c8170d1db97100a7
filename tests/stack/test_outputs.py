"""Terraform-style outputs printed from the state."""

from stack.outputs import render_outputs
from stack.settings import settings_from
from stack.state import Host, State, deploy_home
from tests.stack.records import AWS_DATABASE


def test_outputs_list_hosts_and_the_kong_urls():
    state = State(
        "aws",
        "des",
        hosts={
            "des-db": Host("db", "172.31.0.4", "198.51.100.4", "ubuntu"),
            "des-kong": Host("kong", "172.31.0.9", "198.51.100.9", "ubuntu"),
        },
    )
    text = render_outputs(state, settings_from({"gateway": {"health_path": "/health-check/"}}))
    assert "  des-db    private 172.31.0.4       public 198.51.100.4" in text
    assert "kong_proxy_url = http://198.51.100.9:8000/health-check/" in text
    # The project's known_hosts, strictly: not whatever ~/.ssh/known_hosts trusts for that address.
    known_hosts = deploy_home() / "ssh" / "known_hosts"
    assert (
        f"kong_admin     = ssh -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
        "-L 8001:127.0.0.1:8001 ubuntu@198.51.100.9   then http://127.0.0.1:8001/"
    ) in text


def test_the_tunnel_command_quotes_a_home_with_spaces(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "my deploy"))
    state = State(
        "aws",
        "des",
        hosts={"des-kong": Host("kong", "172.31.0.9", "198.51.100.9", "ubuntu", ssh_key="/keys/my key.pem")},
    )
    text = render_outputs(state, settings_from({}))
    assert (
        f"ssh -i '/keys/my key.pem' -o 'UserKnownHostsFile={tmp_path}/my deploy/ssh/known_hosts' "
        "-o StrictHostKeyChecking=yes -L 8001:127.0.0.1:8001 ubuntu@198.51.100.9"
    ) in text


def test_outputs_show_the_database_endpoint_when_recorded():
    database = AWS_DATABASE
    hosts = {"des-backend-a": Host("backend", "172.31.0.5", "198.51.100.5", "ubuntu", key="a")}
    text = render_outputs(State("aws", "des", hosts=hosts, database=database), settings_from({}))
    assert (
        "  database       = des-db.abc.us-east-1.rds.amazonaws.com:5432   (des-db, master user sprint2admin, "
        "TLS verify-full)"
    ) in text
    assert "database" not in render_outputs(State("aws", "des", hosts=hosts), settings_from({}))
