"""No state file while AWS hosts exist: `provision.py outputs` finds them by their EC2 tags and
records them; inventory.py only reads (no AWS call, no write) and says what to run."""

import pytest

from stack.errors import UserError
from stack.inventory import groups_from_state


def test_inventory_without_state_asks_nothing_writes_nothing_and_says_what_to_run(aws):
    assert aws.run("--no-wait")[0] == 0
    (aws.home / "state.json").unlink()

    aws.recorder.start()
    with pytest.raises(
        UserError,
        match=r"^no hosts recorded yet: run python provision.py first \(or python "
        r"provision.py outputs, which records the AWS hosts it finds by their tags\)$",
    ):
        groups_from_state()
    assert aws.recorder.operations() == []
    assert aws.state() is None


def test_outputs_rebuilds_the_state_from_tags_and_records_it(aws):
    assert aws.run("--no-wait")[0] == 0
    recorded = aws.state()
    (aws.home / "state.json").unlink()

    aws.recorder.start()
    code, out, err = aws.run("outputs")
    assert code == 0, err
    assert aws.recorder.mutating() == []
    assert "kong_proxy_url = http://" in out
    rebuilt = aws.state()
    assert rebuilt["hosts"].keys() == recorded["hosts"].keys()
    assert all(rebuilt["hosts"][name]["instance_id"] == host["instance_id"] for name, host in recorded["hosts"].items())
    assert rebuilt["aws"]["rebuilt_from_tags"] is True

    groups = groups_from_state()  # inventory.py now reads what outputs recorded
    assert [name for name, _ in groups["db"]] == ["des-db"]
    assert [name for name, _ in groups["backends"]] == ["des-backend-a", "des-backend-b"]
    assert [name for name, _ in groups["kong"]] == ["des-kong"]
    data = dict(groups["backends"])["des-backend-b"]
    assert data["backend_key"] == "b"
    assert data["ssh_hostname"] == recorded["hosts"]["des-backend-b"]["public_ip"]
    assert data["private_ip"] == recorded["hosts"]["des-backend-b"]["private_ip"]
    assert data["ssh_key"] == str(aws.home / "ssh" / "des_ed25519")


def test_outputs_without_state_nor_tagged_hosts_says_to_provision(aws):
    code, out, err = aws.run("outputs")
    assert code == 1
    assert err.strip() == "error: no hosts recorded yet: run python provision.py first"
    assert aws.state() is None


def test_outputs_without_state_and_aws_unreachable_is_one_line(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out, err = aws.run("outputs")
    assert code == 1
    assert err.startswith("error: no hosts recorded yet and none found by EC2 tags (cannot reach AWS")
    assert len(err.strip().splitlines()) == 1


def test_outputs_with_a_state_asks_aws_nothing(aws):
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    code, out, _ = aws.run("outputs")
    assert code == 0 and "Outputs:" in out
    assert aws.recorder.operations() == []
