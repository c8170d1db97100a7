"""db_service rds against moto over HTTP: plan, apply, re-apply, outputs, drift, refusals."""

import json

import pytest
import yaml
from test_apply import ingress

RDS_SETTINGS = {"db_service": "rds"}


def words(text: str) -> str:
    return " ".join(text.split())


def db(aws) -> dict:
    return aws.client("rds").describe_db_instances(DBInstanceIdentifier="des-db")["DBInstances"][0]


def sent(aws, monkeypatch, operation: str) -> list[dict]:
    """The parameters of every `operation` call provision.py makes (the call still goes to moto)."""
    seen: list[dict] = []
    aws.inject(monkeypatch, operation, "", "", hook=lambda params: seen.append(params["body"]))
    return seen


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({}, ("16", "db.t3.micro", 20, False, 7)),
        (
            {
                "rds_engine_version": 15,
                "rds_instance_class": "db.t3.small",
                "rds_storage_gb": 50,
                "rds_multi_az": True,
                "backup_keep": 14,
            },
            ("15", "db.t3.small", 50, True, 14),
        ),
    ],
)
def test_the_instance_has_exactly_these_properties(aws, monkeypatch, settings, expected):
    aws.configure(**RDS_SETTINGS, **settings)
    created = sent(aws, monkeypatch, "CreateDBInstance")
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert sorted(aws.recorder.mutating()) == sorted(
        ["ImportKeyPair"]
        + ["CreateSecurityGroup"] * 3
        + ["AuthorizeSecurityGroupIngress"] * 3
        + ["RunInstances"] * 3
        + ["CreateDBSubnetGroup", "CreateDBInstance"]
    )
    assert set(aws.instances()) == {"des-backend-a", "des-backend-b", "des-kong"}  # no db host

    found = db(aws)
    version, kind, storage, multi_az, days = expected
    assert found["Engine"] == "postgres" and found["EngineVersion"] == version
    assert found["DBInstanceClass"] == kind
    assert (found["AllocatedStorage"], found["StorageType"], found["StorageEncrypted"]) == (storage, "gp2", True)
    assert found["PubliclyAccessible"] is False
    assert found["MultiAZ"] is multi_az
    assert found["BackupRetentionPeriod"] == days
    assert found["DeletionProtection"] is True
    assert found["MasterUsername"] == "sprint2admin"
    assert found["CACertificateIdentifier"] == "rds-ca-rsa2048-g1"
    tags = {tag["Key"]: tag["Value"] for tag in found["TagList"]}
    assert tags == {"Project": "des", "Name": "des-db", "ManagedBy": "provision.py", "Role": "db"}

    # the security group: 5432 from the backends' group, nothing else (no SSH: RDS has none)
    groups = aws.groups()
    ids = {name: group["GroupId"] for name, group in groups.items()}
    assert set(ids) == {"des-kong-sg", "des-backends-sg", "des-rds"}
    assert [group["VpcSecurityGroupId"] for group in found["VpcSecurityGroups"]] == [ids["des-rds"]]
    assert ingress(groups["des-rds"], ids) == {(5432, "des-backends-sg")}
    assert {tag["Key"]: tag["Value"] for tag in groups["des-rds"]["Tags"]}["Role"] == "rds"

    # the subnet group: every default subnet of the default VPC (six zones in moto's us-east-1)
    ec2 = aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    defaults = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"]
    group = found["DBSubnetGroup"]
    assert group["DBSubnetGroupName"] == "des-db-subnets" and group["VpcId"] == vpc
    assert {s["SubnetIdentifier"] for s in group["Subnets"]} == {s["SubnetId"] for s in defaults}
    assert len({s["SubnetAvailabilityZone"]["Name"] for s in group["Subnets"]}) >= 2
    arn = aws.client("rds").describe_db_subnet_groups(DBSubnetGroupName="des-db-subnets")["DBSubnetGroups"][0][
        "DBSubnetGroupArn"
    ]
    subnet_tags = aws.client("rds").list_tags_for_resource(ResourceName=arn)["TagList"]
    assert {tag["Key"]: tag["Value"] for tag in subnet_tags}["Project"] == "des"

    # the master password: the one kept with the other secrets (0600), sent to AWS, printed nowhere
    password = yaml.safe_load((aws.home / "secrets.yml").read_text())["rds_master_password"]
    assert len(created) == 1 and created[0]["MasterUserPassword"] == password
    assert password not in out + err and password not in (aws.home / "state.json").read_text()

    # the state's "database" entry, for the deploy
    address = found["Endpoint"]["Address"]
    assert aws.state()["database"] == {
        "service": "rds",
        "identifier": "des-db",
        "address": address,
        "port": 5432,
        "master_user": "sprint2admin",
        "ca_bundle_url": "https://truststore.pki.rds.amazonaws.com/us-east-1/us-east-1-bundle.pem",
    }
    assert "des-db" not in aws.state()["hosts"]
    assert f"database       = {address}:5432   (des-db, master user sprint2admin, TLS verify-full)" in out


def test_plan_shows_the_instance_its_group_and_subnet_group_and_changes_nothing(aws):
    aws.configure(**RDS_SETTINGS, admin_cidr="203.0.113.7/32")
    aws.recorder.start()
    code, out, err = aws.run("plan")
    assert code == 0, err
    assert aws.recorder.mutating() == []
    text = words(out)
    for line in [
        "+ security_group des-rds (in vpc-",
        "+ ingress des-rds (tcp/5432 from des-backends-sg)",
        "+ db_subnet_group des-db-subnets (6 default subnets in us-east-1a, us-east-1b,",
        "+ rds_instance des-db (postgres 16, db.t3.micro, 20 GB gp2 encrypted, single-AZ, not public, "
        "backups kept 7 days, deletion protection, master user sprint2admin)",
        "+ instance des-backend-a",
        "+ instance des-kong",
        "Plan: 14 to add, 0 to change, 0 to destroy.",
    ]:
        assert line in text, line
    assert "des-db-sg" not in text and "+ instance des-db " not in text
    assert not (aws.home / "secrets.yml").exists()  # a plan generates no secret


def test_a_second_apply_makes_no_mutating_call(aws):
    aws.configure(**RDS_SETTINGS, admin_cidr="203.0.113.7/32")
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    calls = aws.recorder.operations()
    assert aws.recorder.mutating() == []
    assert {"DescribeDBInstances", "DescribeDBSubnetGroups", "ListTagsForResource"} <= set(calls)
    assert "No changes" in out and err == ""
    code, again, _ = aws.run("outputs")
    assert code == 0 and again.strip() == out[out.index("Outputs:") :].strip()
    assert "database       = des-db." in again


class Clock:
    """time.monotonic and time.sleep for stack.aws.rds: sleeping advances the clock at once."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_apply_waits_for_the_instance_with_a_line_every_30_s(aws, monkeypatch):
    aws.configure(**RDS_SETTINGS)
    monkeypatch.setattr("stack.aws.rds.time", Clock())
    monkeypatch.setattr("stack.aws.run.Run.wait_until_ready", lambda run, ssh: None)  # EC2: see test_console_pins
    reads = {"n": 0}

    def creating(parsed):  # RDS reports "creating" (and no endpoint) for 7 polls of 10 s, then "backing-up"
        if parsed.get("DBInstances"):
            reads["n"] += 1
            if reads["n"] <= 7:
                parsed["DBInstances"][0]["DBInstanceStatus"] = "creating"
                parsed["DBInstances"][0].pop("Endpoint", None)
            elif reads["n"] == 8:
                parsed["DBInstances"][0]["DBInstanceStatus"] = "backing-up"

    aws.rewrite(monkeypatch, "DescribeDBInstances", creating)
    code, out, err = aws.run()
    assert code == 0, err
    waited = [line for line in out.splitlines() if "RDS des-db" in line]
    assert waited == [
        "  waiting for RDS des-db: creating (0s; RDS takes 5-15 minutes)",
        "  waiting for RDS des-db: creating (30s; RDS takes 5-15 minutes)",
        "  waiting for RDS des-db: creating (1m00s; RDS takes 5-15 minutes)",
        f"  RDS des-db is backing-up at {db(aws)['Endpoint']['Address']}:5432 after 1m10s",
    ]
    assert aws.state()["database"]["address"] == db(aws)["Endpoint"]["Address"]


def test_a_broken_instance_is_one_line(aws, monkeypatch):
    aws.configure(**RDS_SETTINGS)
    monkeypatch.setattr("stack.aws.rds.time", Clock())
    monkeypatch.setattr("stack.aws.run.Run.wait_until_ready", lambda run, ssh: None)

    def failed(parsed):
        if parsed.get("DBInstances"):
            parsed["DBInstances"][0]["DBInstanceStatus"] = "incompatible-parameters"

    aws.rewrite(monkeypatch, "DescribeDBInstances", failed)
    code, out, err = aws.run()
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: RDS instance des-db is incompatible-parameters: see why with aws rds describe-events "
        "--source-type db-instance --source-identifier des-db, fix it, or destroy and re-create it"
    )


def test_drift_is_converged_in_place_and_a_stopped_instance_started(aws):
    aws.configure(**RDS_SETTINGS)
    assert aws.run("--no-wait")[0] == 0
    rds = aws.client("rds")
    rds.modify_db_instance(DBInstanceIdentifier="des-db", DeletionProtection=False, ApplyImmediately=True)
    aws.configure(**RDS_SETTINGS, rds_instance_class="db.t3.small", rds_storage_gb=40, backup_keep=3)
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert (
        "~ rds_instance des-db (class db.t3.micro -> db.t3.small: a few minutes of downtime, storage 20 -> 40 GB, "
        "backups kept 7 -> 3 days, deletion protection on)"
    ) in words(out)
    assert aws.recorder.mutating() == ["ModifyDBInstance"]
    found = db(aws)
    assert (found["DBInstanceClass"], found["AllocatedStorage"], found["BackupRetentionPeriod"]) == (
        "db.t3.small",
        40,
        3,
    )
    assert found["DeletionProtection"] is True

    # storage only grows; a major version is not upgraded by apply: warnings, no call
    aws.configure(
        **RDS_SETTINGS, rds_instance_class="db.t3.small", rds_storage_gb=20, backup_keep=3, rds_engine_version=17
    )
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0 and aws.recorder.mutating() == [] and "No changes" in out
    assert "des-db has 40 GB, rds_storage_gb says 20: RDS storage only grows; set rds_storage_gb: 40" in err
    assert "des-db runs PostgreSQL 16, rds_engine_version says 17: apply does not upgrade a major version" in err

    # Learner Lab stops what runs when the session ends: apply starts it again
    aws.configure(**RDS_SETTINGS, rds_instance_class="db.t3.small", rds_storage_gb=40, backup_keep=3)
    rds.stop_db_instance(DBInstanceIdentifier="des-db")
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    assert "~ rds_instance des-db (start (stopped))" in words(out)
    assert aws.recorder.mutating() == ["StartDBInstance"]
    assert db(aws)["DBInstanceStatus"] == "available"


def test_an_instance_of_that_name_that_is_not_the_projects_is_refused(aws):
    aws.configure(**RDS_SETTINGS)
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier="des-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="someone",
        MasterUserPassword="their-own-password",
    )
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 1 and aws.recorder.mutating() == []
    assert err.strip() == (
        "error: an RDS instance named des-db exists that provision.py did not create for project des "
        "(no tags Project=des, ManagedBy=provision.py): set another project_prefix, or remove it"
    )


@pytest.mark.parametrize("password", ["has@sign-in-it-0123", "has/slash-in-it-0123", "x" * 129])
def test_a_master_password_rds_refuses_stops_before_anything_is_created(aws, monkeypatch, password):
    aws.configure(**RDS_SETTINGS)
    monkeypatch.setenv("DEPLOY_RDS_MASTER_PASSWORD", password)
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 1 and aws.recorder.mutating() == []
    assert err.strip().splitlines()[-1] == (
        "error: rds_master_password (DEPLOY_RDS_MASTER_PASSWORD or secrets.yml): RDS takes at most 128 "
        'characters and none of / " @ or space: choose another'
    )
    assert password not in out + err


@pytest.mark.parametrize(
    "code, message, hint",
    [
        (
            "AccessDenied",
            "User: arn:aws:sts::1:assumed-role/voclabs/user is not authorized to perform: rds:CreateDBInstance "
            "with an explicit deny",
            "Learner Lab: classes up to medium, e.g. db.t3.micro, db.t3.small, db.t3.medium; gp2 up to 100 GB; "
            "Multi-AZ may be refused): check rds_instance_class and rds_storage_gb, set rds_multi_az: false",
        ),
        (
            "InvalidParameterCombination",
            "RDS does not support creating a DB instance with the following combination: DBInstanceClass=db.m1.tiny",
            "try db.t3.micro or db.t4g.micro, another rds_engine_version, or rds_multi_az: false",
        ),
        ("InstanceQuotaExceeded", "DB Instance quota exceeded", "delete unused RDS instances and re-run"),
        ("StorageQuotaExceeded", "storage quota exceeded", "a smaller rds_storage_gb"),
    ],
)
def test_what_rds_refuses_is_one_line_with_the_fix(aws, monkeypatch, code, message, hint):
    aws.configure(**RDS_SETTINGS, rds_multi_az=True)
    aws.inject(monkeypatch, "CreateDBInstance", code, message)
    exit_code, out, err = aws.run("--no-wait")
    assert exit_code == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith(f"error: CreateDBInstance failed: {code}: {message} (hint: ")
    assert hint in line


def test_a_host_stack_creates_and_asks_nothing_of_rds(aws):
    aws.recorder.start()
    code, out, err = aws.run("--no-wait")
    assert code == 0, err
    calls = aws.recorder.operations()
    assert not [call for call in calls if "DB" in call or call == "ListTagsForResource"]
    assert "des-db" in aws.instances()
    assert aws.client("rds").describe_db_instances()["DBInstances"] == []
    assert aws.client("rds").describe_db_subnet_groups()["DBSubnetGroups"] == []
    assert "des-rds" not in aws.groups()
    assert "database" not in aws.state()
    assert "rds_instance" not in out and "db_subnet_group" not in out


def test_moving_from_host_to_rds_keeps_the_db_host_until_asked(aws):
    """docs/rds.md "Moving a stack": the RDS instance is created, the db host is kept until --yes."""
    assert aws.run("--no-wait")[0] == 0
    aws.configure(**RDS_SETTINGS)
    code, out, err = aws.run("--no-wait")
    assert code == 1  # no terminal, no --yes: the db host is not terminated
    assert "refusing to terminate 1 instance (des-db)" in err
    assert db(aws)["DBInstanceStatus"] == "available"
    assert "des-db" in aws.instances()
    state = aws.state()
    assert "des-db" not in state["hosts"] and state["database"]["identifier"] == "des-db"

    # and back: apply never deletes a database; it says so at every run until the instance is gone
    aws.configure()
    for _ in range(2):
        code, out, err = aws.run("--no-wait")
        assert code == 0, err
        assert "the RDS instance des-db exists but db_service is host: apply never deletes a database" in err
        assert "database" not in aws.state()
    assert json.dumps(db(aws)["DeletionProtection"]) == "true"


def test_outputs_without_a_state_records_the_database_found_by_name(aws):
    aws.configure(**RDS_SETTINGS)
    assert aws.run("--no-wait")[0] == 0
    recorded = aws.state()["database"]
    (aws.home / "state.json").unlink()
    aws.recorder.start()
    code, out, err = aws.run("outputs")
    assert code == 0, err
    assert aws.recorder.mutating() == []
    assert aws.state()["database"] == recorded
    assert f"database       = {recorded['address']}:5432" in out
