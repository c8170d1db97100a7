"""inventory.py without a state file: the groups are rebuilt from EC2 tags."""

from stack.inventory import groups_from_state


def test_groups_are_rebuilt_from_tags_and_kept_as_state(aws):
    assert aws.run("--no-wait")[0] == 0
    recorded = aws.state()
    (aws.home / "state.json").unlink()

    aws.recorder.start()
    groups = groups_from_state()
    assert aws.recorder.mutating() == []
    assert [name for name, _ in groups["db"]] == ["des-db"]
    assert [name for name, _ in groups["backends"]] == ["des-backend-a", "des-backend-b"]
    assert [name for name, _ in groups["kong"]] == ["des-kong"]
    data = dict(groups["backends"])["des-backend-b"]
    assert data["backend_key"] == "b"
    assert data["ssh_hostname"] == recorded["hosts"]["des-backend-b"]["public_ip"]
    assert data["private_ip"] == recorded["hosts"]["des-backend-b"]["private_ip"]
    assert data["ssh_key"] == str(aws.home / "ssh" / "des_ed25519")
    rebuilt = aws.state()
    assert rebuilt["hosts"].keys() == recorded["hosts"].keys()
    assert all(rebuilt["hosts"][name]["instance_id"] == host["instance_id"]
               for name, host in recorded["hosts"].items())


def test_no_state_and_no_tagged_hosts_says_to_provision(aws):
    import pytest

    from stack.errors import UserError
    with pytest.raises(UserError, match="no hosts recorded yet: run python provision.py first"):
        groups_from_state()


def test_no_state_and_aws_unreachable_is_one_line(aws, monkeypatch):
    import pytest

    from stack.errors import UserError
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(UserError, match=r"^no hosts recorded yet and none found by EC2 tags \(cannot reach AWS"):
        groups_from_state()
