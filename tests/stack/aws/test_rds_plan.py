"""The RDS plan as data and as text: pure, no AWS."""

from datetime import UTC, datetime

from stack.aws.plan import render
from stack.aws.rds_model import Database, RdsActual
from stack.aws.rds_plan import (
    ca_bundle_url,
    changes,
    database_entry,
    final_snapshot_name,
    plan_rds,
    plan_rds_destroy,
)
from stack.aws.rules import desired_rules
from stack.settings import settings_from

SUBNETS = [
    {"SubnetId": "subnet-a", "AvailabilityZone": "us-east-1a"},
    {"SubnetId": "subnet-b", "AvailabilityZone": "us-east-1b"},
]


def converged(**values) -> Database:
    """An instance exactly as the default rds settings (plus `values`) want it."""
    fields = dict(
        identifier="des-db",
        status="available",
        engine_version="16.4",
        instance_class="db.t3.micro",
        storage_gb=20,
        storage_type="gp2",
        encrypted=True,
        backup_days=7,
        deletion_protection=True,
        groups=("sg-rds",),
        address="des-db.x.us-east-1.rds.amazonaws.com",
        port=5432,
    )
    return Database(**{**fields, **values})


def test_an_empty_account_plans_the_subnet_group_and_the_instance():
    settings = settings_from({"db_service": "rds", "rds_multi_az": True, "backup_keep": 3})
    assert render(plan_rds(settings, RdsActual(), None, SUBNETS)) == "\n".join(
        [
            "  + db_subnet_group  des-db-subnets  (2 default subnets in us-east-1a, us-east-1b)",
            "  + rds_instance     des-db  (postgres 16, db.t3.micro, 20 GB gp2 encrypted, Multi-AZ, not public, "
            "backups kept 3 days, deletion protection, master user sprint2admin)",
            "",
            "Plan: 2 to add, 0 to change, 0 to destroy.",
        ]
    )


def test_a_converged_instance_plans_nothing_whatever_its_minor_version():
    settings = settings_from({"db_service": "rds"})
    actual = RdsActual(instance=converged(), subnet_group="des-db-subnets")
    assert plan_rds(settings, actual, "sg-rds", []) == []
    assert changes(settings, converged(), "sg-rds") == ({}, [], [])


def test_drift_is_one_modify_and_what_cannot_change_a_warning():
    settings = settings_from({"db_service": "rds", "rds_instance_class": "db.t3.medium", "rds_storage_gb": 30})
    found = converged(public=True, groups=("sg-rds", "sg-other"), deletion_protection=False, multi_az=True)
    modify, said, warnings = changes(settings, found, "sg-rds")
    assert modify == {
        "DBInstanceClass": "db.t3.medium",
        "AllocatedStorage": 30,
        "MultiAZ": False,
        "DeletionProtection": True,
        "PubliclyAccessible": False,
        "VpcSecurityGroupIds": ["sg-rds"],
    }
    assert said[0] == "class db.t3.micro -> db.t3.medium"  # Multi-AZ: no downtime said
    assert warnings == []
    _, _, warnings = changes(settings_from({"db_service": "rds"}), converged(encrypted=False, storage_gb=25), None)
    assert warnings == [
        "des-db has 25 GB, rds_storage_gb says 20: RDS storage only grows; set rds_storage_gb: 25",
        "des-db is not encrypted, and RDS cannot encrypt it in place (restore a copy instead)",
    ]


def test_a_stopped_instance_is_started_first():
    settings = settings_from({"db_service": "rds", "rds_instance_class": "db.t3.small"})
    actions = plan_rds(settings, RdsActual(converged(status="stopped"), "des-db-subnets"), "sg-rds", [])
    assert [(a.op, a.kind, a.detail) for a in actions] == [("~", "rds_instance", "start (stopped)")]


def test_destroy_names_the_final_snapshot_by_utc_time():
    settings = settings_from({"db_service": "rds", "project_prefix": "team3"})
    name = final_snapshot_name(settings, datetime(2026, 12, 6, 22, 5, 9, tzinfo=UTC))
    assert name == "team3-db-final-20261206-220509"
    actual = RdsActual(converged(identifier="team3-db"), "team3-db-subnets")
    assert [(a.kind, a.name, a.detail) for a in plan_rds_destroy(settings, actual, name)] == [
        ("rds_instance", "team3-db", "deletion protection off, final snapshot team3-db-final-20261206-220509"),
        ("db_subnet_group", "team3-db-subnets", ""),
    ]
    assert plan_rds_destroy(settings, RdsActual(), name) == []


def test_the_rds_group_replaces_the_db_group_and_admits_only_the_backends():
    rules = desired_rules(settings_from({"db_service": "rds", "admin_cidr": "203.0.113.7/32"}))
    assert set(rules) == {"des-kong-sg", "des-backends-sg", "des-rds"}
    assert [rule.describe() for rule in rules["des-rds"]] == ["tcp/5432 from des-backends-sg"]
    assert set(desired_rules(settings_from({}))) == {"des-kong-sg", "des-backends-sg", "des-db-sg"}


def test_the_database_entry_waits_for_an_endpoint():
    assert database_entry(converged(address=None, status="creating"), "us-west-2") is None
    assert database_entry(None, "us-west-2") is None
    entry = database_entry(converged(), "us-west-2")
    assert entry is not None and entry["ca_bundle_url"] == ca_bundle_url("us-west-2")
    assert ca_bundle_url("us-west-2") == "https://truststore.pki.rds.amazonaws.com/us-west-2/us-west-2-bundle.pem"
