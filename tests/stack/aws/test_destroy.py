"""Scaling and destroy against moto: nothing tagged is left behind, and AWS's deletion order is kept."""

import pytest

BASE = {"des-db", "des-backend-a", "des-backend-b", "des-kong"}


def words(text: str) -> str:
    return " ".join(text.split())


def like_aws_dependency_checks(aws, monkeypatch) -> list[str]:
    """Refuse DeleteSecurityGroup as real AWS does (moto does not): while another group's rule names
    the group, or a live instance still uses it. Returns the refusals seen."""
    refusals = []
    ec2 = aws.client("ec2")

    def check(params):
        body = params["body"]
        group_id = (
            body["GroupId"]
            if isinstance(body, dict)
            else dict(pair.split("=", 1) for pair in body.split("&"))["GroupId"]
        )
        for group in ec2.describe_security_groups()["SecurityGroups"]:
            for permission in group["IpPermissions"]:
                if any(pair["GroupId"] == group_id for pair in permission.get("UserIdGroupPairs", [])):
                    refusals.append(f"{group_id} referenced by {group['GroupName']}")
        for name, raw in aws.instances("pending", "running", "stopping", "stopped", "shutting-down").items():
            if any(g["GroupId"] == group_id for g in raw["SecurityGroups"]):
                refusals.append(f"{group_id} used by {name}")
        if refusals:
            error = {
                "Error": {"Code": "DependencyViolation", "Message": f"resource {group_id} has a dependent object"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            from conftest import _Http

            return _Http(400), error
        return None

    aws.inject(monkeypatch, "DeleteSecurityGroup", "", "", hook=check)
    return refusals


def test_scale_out_to_four_backends_and_back_to_two(aws):
    aws.configure(manager_email="ops@example.com")
    assert aws.run("--no-wait")[0] == 0
    before = {name: raw["InstanceId"] for name, raw in aws.instances().items()}

    aws.configure(manager_email="ops@example.com", backends=["a", "b", "c", "d"])
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert sorted(aws.recorder.mutating()) == ["PutMetricAlarm"] * 4 + ["RunInstances"] * 2
    assert set(aws.instances()) == BASE | {"des-backend-c", "des-backend-d"}
    assert {name: aws.instances()[name]["InstanceId"] for name in BASE} == before  # untouched
    assert set(aws.state()["hosts"]) == BASE | {"des-backend-c", "des-backend-d"}

    aws.configure(manager_email="ops@example.com", backends=["a", "b"])
    code, out, err = aws.run("--no-wait")
    assert code == 1  # no terminal, no --yes: refused
    assert "refusing to terminate 2 instances (des-backend-c, des-backend-d)" in err
    assert len(aws.instances()) == 6

    aws.recorder.start()
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert "Plan: 0 to add, 0 to change, 6 to destroy." in out  # 2 hosts + their 4 alarms
    assert sorted(aws.recorder.mutating()) == ["DeleteAlarms"] * 4 + ["TerminateInstances"] * 2
    assert set(aws.instances()) == BASE
    assert set(aws.state()["hosts"]) == BASE
    alarms = aws.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert not [a for a in alarms if "backend-c" in a["AlarmName"] or "backend-d" in a["AlarmName"]]


def test_destroy_only_one_host(aws):
    assert aws.run("--no-wait")[0] == 0
    code, out, err = aws.run("destroy", "--only", "des-backend-z", "--yes")
    assert code == 1
    assert err.strip() == (
        "error: --only des-backend-z: no such host of project des (its hosts: des-backend-a, "
        "des-backend-b, des-db, des-kong)"
    )

    code, out, err = aws.run("destroy", "--only", "des-backend-b", "--yes")
    assert code == 0, err
    assert set(aws.instances()) == BASE - {"des-backend-b"}
    assert set(aws.instances("terminated")) == {"des-backend-b"}
    assert set(aws.state()["hosts"]) == BASE - {"des-backend-b"}
    assert len(aws.groups()) == 3  # the groups stay for the other hosts
    # the next apply puts it back
    code, out, _ = aws.run("--no-wait")
    assert code == 0 and "Plan: 1 to add, 0 to change, 0 to destroy." in out


def test_full_destroy_leaves_nothing_tagged_and_keeps_aws_order(aws, monkeypatch):
    aws.configure(manager_email="ops@example.com")
    assert aws.run("--no-wait")[0] == 0
    refusals = like_aws_dependency_checks(aws, monkeypatch)

    aws.recorder.start()
    code, out, err = aws.run("destroy", "--dry")
    assert code == 0 and aws.recorder.mutating() == []
    assert "Plan: 0 to add, 0 to change, 17 to destroy." in out
    assert "des-db holds the database: add --backup PATH" in err

    code, out, err = aws.run("destroy")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: refusing to terminate 4 instances")
    assert len(aws.instances()) == 4

    aws.recorder.start()
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    assert refusals == []
    calls = aws.recorder.mutating()
    deletes = [i for i, call in enumerate(calls) if call == "DeleteSecurityGroup"]
    assert len(deletes) == 3
    assert calls.index("TerminateInstances") < min(deletes)
    assert max(i for i, call in enumerate(calls) if call == "RevokeSecurityGroupIngress") < min(deletes)

    assert aws.instances() == {}
    assert aws.groups() == {}
    ec2 = aws.client("ec2")
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    # (moto's describe_tags keeps tags of deleted resources, so each kind is asked for directly)
    assert ec2.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": ["des"]}])["SecurityGroups"] == []
    assert set(aws.instances("terminated")) == BASE
    assert aws.client("sns").list_topics()["Topics"] == []
    assert aws.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert aws.state() is None

    aws.recorder.start()
    code, out, _ = aws.run("destroy", "--yes")  # again: nothing left, nothing done
    assert code == 0 and "Nothing to destroy." in out and aws.recorder.mutating() == []


def test_the_dependency_check_itself_catches_the_wrong_order(aws, monkeypatch):
    """Guard for the test above: deleting a still-referenced group is refused by the emulation."""
    from botocore.exceptions import ClientError

    from stack.aws.clients import Clients
    from stack.aws.groups import delete_groups

    assert aws.run("--no-wait")[0] == 0
    refusals = like_aws_dependency_checks(aws, monkeypatch)
    aws.client("ec2").terminate_instances(InstanceIds=[raw["InstanceId"] for raw in aws.instances().values()])
    ec2 = Clients("us-east-1").ec2
    found = {name: group["GroupId"] for name, group in aws.groups().items()}
    wrong_order = {name: found[name] for name in ("des-kong-sg", "des-backends-sg", "des-db-sg")}
    with pytest.raises(ClientError, match="DependencyViolation"):
        delete_groups(ec2, wrong_order, {}, print)  # no references dropped, referenced group first
    assert refusals and "referenced by des-backends-sg" in refusals[0]


def test_backup_refusals_happen_before_anything_is_touched(aws, tmp_path):
    assert aws.run("--no-wait")[0] == 0
    existing = tmp_path / "dump.pgc"
    existing.write_text("old")
    cases = [
        (
            ("destroy", "--only", "des-backend-a", "--backup", str(tmp_path / "x.pgc"), "--yes"),
            "error: --backup dumps the database before des-db is terminated, but des-db is not being destroyed: "
            "drop --backup",
        ),
        (
            ("destroy", "--backup", str(tmp_path / "missing" / "x.pgc"), "--yes"),
            f"error: --backup {tmp_path / 'missing' / 'x.pgc'}: folder {tmp_path / 'missing'} does not exist",
        ),
        (
            ("destroy", "--backup", str(existing), "--yes"),
            f"error: --backup {existing}: the file exists; choose a new name (backups are never overwritten)",
        ),
        (("destroy", "--backup", str(tmp_path / "new.pgc")), "error: refusing to terminate 4 instances"),
    ]
    aws.recorder.start()
    for args, line in cases:
        code, out, err = aws.run(*args)
        assert code == 1 and err.strip().splitlines()[-1].startswith(line), err
    assert aws.recorder.mutating() == []
    assert len(aws.instances()) == 4 and not (tmp_path / "new.pgc").exists()


def test_a_failed_backup_stops_the_destroy_and_a_good_one_precedes_it(aws, tmp_path, monkeypatch):
    """pg_dump over SSH is replaced by local commands here: moto's hosts are not real (no traffic)."""
    assert aws.run("--no-wait")[0] == 0
    monkeypatch.setattr("stack.aws.backup.ssh_command", lambda settings, address: ["sh", "-c", "echo boom >&2; false"])
    code, out, err = aws.run("destroy", "--backup", str(tmp_path / "db.pgc"), "--yes")
    assert code == 1
    assert err.strip() == "error: backup of des-db failed (boom); nothing was terminated"
    assert not (tmp_path / "db.pgc").exists() and len(aws.instances()) == 4

    monkeypatch.setattr("stack.aws.backup.ssh_command", lambda settings, address: ["/nonexistent/ssh"])
    code, out, err = aws.run("destroy", "--backup", str(tmp_path / "db.pgc"), "--yes")
    assert code == 1
    assert err.strip() == (
        "error: backup of des-db failed: cannot run ssh (No such file or directory); "
        "install openssh-client; nothing was terminated"
    )
    assert not (tmp_path / "db.pgc").exists() and len(aws.instances()) == 4

    monkeypatch.setattr("stack.aws.backup.ssh_command", lambda settings, address: ["printf", "PGDMP-fake"])
    code, out, err = aws.run("destroy", "--backup", str(tmp_path / "db.pgc"), "--yes")
    assert code == 0, err
    assert (tmp_path / "db.pgc").read_text() == "PGDMP-fake"
    assert (tmp_path / "db.pgc").stat().st_mode & 0o777 == 0o600
    assert aws.instances() == {}


def test_ssh_command_for_the_dump_uses_the_project_key(aws):
    from stack.aws.backup import ssh_command
    from stack.aws.plan import Instance
    from stack.errors import UserError
    from stack.settings import load_settings

    database = Instance("i-0abc", "des-db", "running", "db", None, "t2.nano", "172.31.0.4", "192.0.2.10", "us-east-1a")
    with pytest.raises(
        UserError, match=r"^des-db \(i-0abc\) has no host key pinned in .*known_hosts; nothing is trusted"
    ):
        ssh_command(load_settings(), database)
    (aws.home / "ssh").mkdir(parents=True, exist_ok=True)
    (aws.home / "ssh" / "known_hosts").write_text(
        "i-0abc,192.0.2.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMSFrAi7WodGpvx4XLh5c6PuJRaptHJM5psjLUXoiLy9\n"
    )
    command = ssh_command(load_settings(), database)
    assert command[-2:] == ["ubuntu@192.0.2.10", "sudo -u postgres pg_dump --format=custom dispatch_db"]
    assert command[command.index("-i") + 1] == str(aws.home / "ssh" / "des_ed25519")
    assert "BatchMode=yes" in command and "StrictHostKeyChecking=yes" in command and "HostKeyAlias=i-0abc" in command
    assert "accept-new" not in " ".join(command)
