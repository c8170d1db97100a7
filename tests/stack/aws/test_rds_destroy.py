"""destroy with db_service rds against moto: protection off, the final snapshot (named), delete,
wait, then the subnet group and the groups; --skip-final-snapshot only when asked."""

import re

from conftest import _Http
from test_destroy import like_aws_dependency_checks
from test_rds_apply import Clock, words

SNAPSHOT = re.compile(r"des-db-final-\d{8}-\d{6}")


def rds_left(aws) -> tuple[list, list]:
    rds = aws.client("rds")
    return rds.describe_db_instances()["DBInstances"], rds.describe_db_subnet_groups()["DBSubnetGroups"]


def test_destroy_takes_the_final_snapshot_then_deletes_in_a_safe_order(aws, monkeypatch):
    aws.configure(db_service="rds", manager_email="ops@example.com")
    assert aws.run("--no-wait")[0] == 0
    refusals = like_aws_dependency_checks(aws, monkeypatch)
    aws.recorder.start()
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    assert refusals == []
    names = SNAPSHOT.findall(out)
    assert names and len(set(names)) == 1  # the plan and the progress line say the same name
    snapshot = names[0]
    text = words(out)
    assert f"- rds_instance des-db (deletion protection off, final snapshot {snapshot})" in text
    assert "- db_subnet_group des-db-subnets" in text
    assert f"deleting RDS instance des-db after its final snapshot {snapshot}" in text
    assert "deleted RDS instance des-db" in text and "deleted DB subnet group des-db-subnets" in text

    calls = aws.recorder.mutating()
    order = [call for call in calls if call in ("ModifyDBInstance", "DeleteDBInstance", "DeleteDBSubnetGroup")]
    assert order == ["ModifyDBInstance", "DeleteDBInstance", "DeleteDBSubnetGroup"]
    groups_at = [index for index, call in enumerate(calls) if call == "DeleteSecurityGroup"]
    assert groups_at and min(groups_at) > calls.index("DeleteDBSubnetGroup")

    snapshots = aws.client("rds").describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"]
    assert [s["DBInstanceIdentifier"] for s in snapshots] == ["des-db"]
    assert rds_left(aws) == ([], [])
    assert aws.groups() == {} and aws.instances() == {} and aws.state() is None


def test_skip_final_snapshot_only_when_asked(aws):
    aws.configure(db_service="rds")
    assert aws.run("--no-wait")[0] == 0
    code, out, err = aws.run("destroy", "--yes", "--skip-final-snapshot")
    assert code == 0, err
    assert "- rds_instance des-db (deletion protection off, NO final snapshot (--skip-final-snapshot))" in words(out)
    assert "deleting RDS instance des-db without a final snapshot" in out
    assert not SNAPSHOT.search(out)
    assert aws.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert rds_left(aws) == ([], [])


def test_destroy_asks_first_and_dry_changes_nothing(aws):
    aws.configure(db_service="rds")
    assert aws.run("--no-wait")[0] == 0
    aws.recorder.start()
    code, out, err = aws.run("destroy", "--dry")
    assert code == 0 and aws.recorder.mutating() == []
    assert SNAPSHOT.search(out)
    code, out, err = aws.run("destroy")  # no terminal, no --yes
    assert code == 1
    assert "delete 1 RDS instance (des-db)" in err and "delete 1 DB subnet group (des-db-subnets)" in err
    assert aws.recorder.mutating() == []
    assert aws.client("rds").describe_db_instances()["DBInstances"][0]["DeletionProtection"] is True


def test_destroy_waits_for_the_deletion_with_progress_lines(aws, monkeypatch):
    aws.configure(db_service="rds")
    assert aws.run("--no-wait")[0] == 0
    monkeypatch.setattr("stack.aws.rds.time", Clock())
    deleted = {"reads": 0}
    real = aws.client("rds").describe_db_instances()["DBInstances"][0]

    def still_deleting(params):
        """After DeleteDBInstance, RDS still shows the instance "deleting" for 4 polls of 10 s."""
        if not aws.client("rds").describe_db_instances()["DBInstances"]:
            deleted["reads"] += 1
            if deleted["reads"] <= 4:
                return _Http(200), {"DBInstances": [{**real, "DBInstanceStatus": "deleting"}]}
        return None

    aws.inject(monkeypatch, "DescribeDBInstances", "", "", hook=still_deleting)
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith(("  waiting for RDS", "  deleted RDS"))]
    assert lines == [
        "  waiting for RDS des-db to go: deleting (0s)",
        "  waiting for RDS des-db to go: deleting (30s)",
        "  deleted RDS instance des-db after 40s",
    ]


def test_a_host_stack_destroy_also_finds_an_rds_instance_left_behind(aws):
    aws.configure(db_service="rds")
    assert aws.run("--no-wait")[0] == 0
    aws.configure()  # db_service back to host: destroy still removes every resource of the project
    code, out, err = aws.run("destroy", "--yes")
    assert code == 0, err
    assert SNAPSHOT.search(out)
    assert rds_left(aws) == ([], [])


def test_backup_is_refused_with_rds_and_the_flag_only_goes_with_destroy(aws):
    aws.configure(db_service="rds")
    assert aws.run("--no-wait")[0] == 0
    code, out, err = aws.run("destroy", "--yes", "--backup", str(aws.home / "db.dump"))
    assert code == 1
    assert err.strip() == (
        "error: --backup pulls a pg_dump from a db host, and des-db is an RDS instance: drop --backup "
        "(destroy takes its final snapshot), or run python provision.py backup first"
    )
    code, out, err = aws.run("--skip-final-snapshot")
    assert code == 2 and "--skip-final-snapshot goes with destroy" in err
