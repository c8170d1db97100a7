"""provision.py apply against moto over HTTP: what the first run creates, and that re-runs are quiet."""

import os
import stat
import subprocess

from conftest import NEWEST_NOBLE

NAMES = {"des-db", "des-backend-a", "des-backend-b", "des-kong"}


def ingress(group: dict, ids: dict[str, str]) -> set[tuple]:
    """(port, source) for each rule; group sources by name."""
    names = {group_id: name for name, group_id in ids.items()}
    found = set()
    for permission in group["IpPermissions"]:
        assert permission["IpProtocol"] == "tcp" and permission["FromPort"] == permission["ToPort"]
        for entry in permission.get("IpRanges", []):
            found.add((permission["FromPort"], entry["CidrIp"]))
        for entry in permission.get("UserIdGroupPairs", []):
            found.add((permission["FromPort"], names.get(entry["GroupId"], entry["GroupId"])))
    return found


def test_first_run_creates_exactly_the_hosts_groups_and_rules(aws, monkeypatch):
    tokens = []
    aws.inject(monkeypatch, "RunInstances", "", "", hook=lambda params: tokens.append(params["body"]["ClientToken"]))
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert len(tokens) == 4 and len(set(tokens)) == 4 and all(len(t) == 36 for t in tokens)  # a fresh uuid each
    assert sorted(aws.recorder.mutating()) == sorted(
        ["ImportKeyPair"] + ["CreateSecurityGroup"] * 3 + ["AuthorizeSecurityGroupIngress"] * 3 + ["RunInstances"] * 4
    )
    assert "Plan: 14 to add, 0 to change, 0 to destroy." in out

    instances = aws.instances()
    assert set(instances) == NAMES
    ids = {name: group["GroupId"] for name, group in aws.groups().items()}
    assert set(ids) == {"des-db-sg", "des-backends-sg", "des-kong-sg"}
    for name, raw in instances.items():
        tags = raw["TagMap"]
        assert tags["Project"] == "des" and tags["ManagedBy"] == "provision.py" and tags["Name"] == name
        assert raw["ImageId"] == NEWEST_NOBLE  # the newest Canonical noble amd64, not the decoys
        assert raw["KeyName"] == "des-key"
        assert raw["PublicIpAddress"] and raw["PrivateIpAddress"].startswith("172.31.")
        assert raw["SubnetId"] and raw["VpcId"]
        role = {"des-db": "db", "des-kong": "kong"}.get(name, "backend")
        assert tags["Role"] == role
        assert [g["GroupName"] for g in raw["SecurityGroups"]] == [
            {"db": "des-db-sg", "backend": "des-backends-sg", "kong": "des-kong-sg"}[role]
        ]
    assert instances["des-db"]["InstanceType"] == "t2.nano"
    assert instances["des-backend-a"]["InstanceType"] == "t2.nano"
    assert instances["des-kong"]["InstanceType"] == "t2.small"
    assert instances["des-backend-b"]["TagMap"]["BackendKey"] == "b"

    groups = aws.groups()
    assert ingress(groups["des-kong-sg"], ids) == {(8000, "0.0.0.0/0"), (22, "0.0.0.0/0")}
    assert ingress(groups["des-backends-sg"], ids) == {(8080, "des-kong-sg"), (22, "0.0.0.0/0")}
    assert ingress(groups["des-db-sg"], ids) == {(5432, "des-backends-sg"), (22, "0.0.0.0/0")}
    assert "admin_cidr" in err and "0.0.0.0/0" in err  # the warning says how to restrict SSH

    # the state inventory.py reads, the generated key, Terraform-like outputs
    state = aws.state()
    assert state["provider"] == "aws" and set(state["hosts"]) == NAMES
    instances = aws.instances()
    key = aws.home / "ssh" / "des_ed25519"
    for name, host in state["hosts"].items():
        assert host["instance_id"] == instances[name]["InstanceId"]
        assert host["public_ip"] == instances[name]["PublicIpAddress"]
        assert host["private_ip"] == instances[name]["PrivateIpAddress"]
        assert host["ssh_user"] == "ubuntu" and host["ssh_key"] == str(key)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "PRIVATE KEY" in key.read_text()
    kong_ip = instances["des-kong"]["PublicIpAddress"]
    assert f"kong_proxy_url = http://{kong_ip}:8000/despachos/reporte/" in out
    assert (
        f"ssh -i {key} -o UserKnownHostsFile={aws.home / 'ssh' / 'known_hosts'} -o StrictHostKeyChecking=yes "
        f"-o HostKeyAlias={instances['des-kong']['InstanceId']} -L 8001:127.0.0.1:8001 ubuntu@{kong_ip}"
    ) in out

    code, again, _ = aws.run("outputs")
    assert code == 0 and again.strip() == out[out.index("Outputs:") :].strip()


def test_second_run_plans_nothing_and_makes_no_mutating_call(aws):
    aws.configure(manager_email="ops@example.com", admin_cidr="203.0.113.7/32", kong_admin_cidr="198.51.100.0/24")
    assert aws.run("--no-wait")[0] == 0
    groups = aws.groups()
    ids = {name: group["GroupId"] for name, group in groups.items()}
    assert ingress(groups["des-kong-sg"], ids) == {
        (8000, "0.0.0.0/0"),
        (22, "203.0.113.7/32"),
        (8001, "198.51.100.0/24"),
    }
    assert ingress(groups["des-backends-sg"], ids) == {(8080, "des-kong-sg"), (22, "203.0.113.7/32")}
    assert ingress(groups["des-db-sg"], ids) == {(5432, "des-backends-sg"), (22, "203.0.113.7/32")}

    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    calls = aws.recorder.operations()
    assert calls and aws.recorder.mutating() == []  # the recorder saw the reads, and nothing else
    # Each read once, the topic asked by its ARN (not by listing every topic of the account): 8 calls.
    assert sorted(calls) == [
        "DescribeAlarms",
        "DescribeInstances",
        "DescribeKeyPairs",
        "DescribeSecurityGroupRules",
        "DescribeSecurityGroups",
        "DescribeVpcs",
        "GetCallerIdentity",
        "ListSubscriptionsByTopic",
    ]
    assert "No changes" in out
    assert err == ""  # admin_cidr set: no warning


def test_dry_on_an_empty_account_lists_everything_and_changes_nothing(aws):
    aws.configure(manager_email="ops@example.com")
    aws.recorder.start()
    code, out, err = aws.run("--dry")
    assert code == 0, err
    assert aws.recorder.operations() and aws.recorder.mutating() == []
    words = " ".join(out.split())
    for line in [
        "+ key_pair des-key",
        "+ security_group des-kong-sg",
        "+ security_group des-backends-sg",
        "+ security_group des-db-sg",
        "+ ingress des-kong-sg (tcp/8000 from 0.0.0.0/0)",
        "+ ingress des-backends-sg (tcp/8080 from des-kong-sg)",
        "+ ingress des-db-sg (tcp/5432 from des-backends-sg)",
        "+ instance des-db (t2.nano",
        "+ instance des-backend-a",
        "+ instance des-backend-b",
        "+ instance des-kong (t2.small",
        "+ sns_topic des-alerts",
        "+ sns_subscription ops@example.com",
        "+ alarm des-db-status-check",
        "+ alarm des-kong-auto-recover",
        "Plan: 24 to add, 0 to change, 0 to destroy.",
        "--dry: nothing was changed.",
    ]:
        assert line in words, line
    assert aws.instances() == {} and aws.groups() == {} and aws.state() is None
    assert not (aws.home / "ssh").exists()


def test_dry_as_a_user_runs_it(aws):
    """The real CLI in a subprocess: plan prints the plan and the server sees no write."""
    aws.recorder.start()
    result = aws.cli("plan")
    assert result.returncode == 0, result.stderr
    assert "Plan: 14 to add, 0 to change, 0 to destroy." in result.stdout
    assert aws.recorder.mutating() == []


def test_rule_opened_by_hand_is_planned_for_revocation_and_revoked_with_yes(aws):
    assert aws.run("--no-wait")[0] == 0
    ec2 = aws.client("ec2")
    db = aws.groups()["des-db-sg"]["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=db,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )

    aws.recorder.start()
    code, out, err = aws.run("--no-wait")  # no terminal, no --yes: refused, nothing revoked
    assert code == 1
    assert "- ingress des-db-sg (tcp/5432 from 0.0.0.0/0)" in " ".join(out.split())
    assert err.strip().splitlines()[-1] == (
        "error: refusing to revoke 1 rule (des-db-sg) without confirmation: re-run with --yes"
    )
    assert "Traceback" not in err
    assert aws.recorder.mutating() == []
    assert (5432, "0.0.0.0/0") in ingress(aws.groups()["des-db-sg"], {})

    aws.recorder.start()
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert aws.recorder.mutating() == ["RevokeSecurityGroupIngress"]
    ids = {name: group["GroupId"] for name, group in aws.groups().items()}
    assert ingress(aws.groups()["des-db-sg"], ids) == {(5432, "des-backends-sg"), (22, "0.0.0.0/0")}

    # tightening admin_cidr converges both ways: the new source in, the old one out
    aws.configure(admin_cidr="203.0.113.7/32")
    code, out, err = aws.run("--no-wait", "--yes")
    assert code == 0, err
    assert "Plan: 3 to add, 0 to change, 3 to destroy." in out
    for group in aws.groups().values():
        ssh = {r["CidrIp"] for p in group["IpPermissions"] if p["FromPort"] == 22 for r in p["IpRanges"]}
        assert ssh == {"203.0.113.7/32"}


def test_ami_id_new_images_and_stopped_hosts(aws):
    aws.configure(ami_id="ami-0aa00000000000001")
    assert aws.run("--no-wait")[0] == 0
    assert {raw["ImageId"] for raw in aws.instances().values()} == {"ami-0aa00000000000001"}
    aws.configure()  # now the newest noble build differs from what runs: identity is by tags, not AMI
    aws.recorder.start()
    code, out, _ = aws.run("--no-wait")
    assert code == 0 and "No changes" in out and aws.recorder.mutating() == []

    # Learner Lab stops the hosts when the session ends: apply starts them and records the new IPs
    db = aws.instances()["des-db"]["InstanceId"]
    aws.client("ec2").stop_instances(InstanceIds=[db])
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert f"~ instance des-db ({db}: start (stopped))" in " ".join(out.split())
    assert aws.recorder.mutating() == ["StartInstances"]
    assert aws.instances()["des-db"]["State"]["Name"] == "running"
    assert aws.state()["hosts"]["des-db"]["public_ip"] == aws.instances()["des-db"]["PublicIpAddress"]


def test_an_unknown_key_name_is_refused_and_an_existing_one_used(aws, tmp_path):
    aws.configure(key_name="vockey")
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert err.strip() == (
        "error: key pair 'vockey' not found in this region: check key_name (Learner Lab's "
        "vockey exists only in us-east-1), or unset key_name to generate a project key"
    )
    assert aws.instances() == {}

    aws.client("ec2").create_key_pair(KeyName="vockey")
    pem = tmp_path / "labsuser.pem"
    pem.write_text("not a real key")
    aws.configure(key_name="vockey", ssh_key_path=str(pem))
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert "ImportKeyPair" not in aws.recorder.mutating()
    assert {raw["KeyName"] for raw in aws.instances().values()} == {"vockey"}
    assert {host["ssh_key"] for host in aws.state()["hosts"].values()} == {str(pem)}
    assert not (aws.home / "ssh" / "des_ed25519").exists()


def test_a_state_of_another_project_is_not_overwritten(aws):
    assert aws.run("--no-wait")[0] == 0
    aws.configure(project_prefix="other")
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 1
    assert err.strip() == (
        "error: the state holds the hosts of project 'des' but project_prefix is 'other': set it "
        "back and run destroy first, or set DEPLOY_HOME to another folder"
    )
    assert aws.recorder.operations() == [] and set(aws.state()["hosts"]) == NAMES


def test_a_project_key_without_its_public_part_is_derived_again(aws):
    private = aws.home / "ssh" / "des_ed25519"
    private.parent.mkdir(parents=True, mode=0o700)
    made = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private)], capture_output=True)
    assert made.returncode == 0
    expected = private.with_name("des_ed25519.pub").read_text().split()[:2]
    private.with_name("des_ed25519.pub").unlink()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert private.with_name("des_ed25519.pub").read_text().split()[:2] == expected
    pairs = aws.client("ec2").describe_key_pairs(KeyNames=["des-key"])["KeyPairs"]
    assert len(pairs) == 1
