"""The project's security groups in the default VPC: find, create, converge rules, delete in order."""

import time

from stack.aws.retry import retry_while_busy
from stack.aws.rules import Rule, group_names, permission_of, rule_of
from stack.aws.tags import tag_specs

PATIENCE_SECONDS = 300  # ENIs of just-terminated hosts can hold a group for a few minutes
RETRY_SECONDS = 10


def find_groups(ec2, prefix: str, vpc_id: str) -> list[dict]:
    """The project's groups, by name within the VPC (names are unique per VPC)."""
    return ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": list(group_names(prefix).values())},
        ]
    )["SecurityGroups"]


def actual_rules(ec2, groups: list[dict]) -> tuple[dict[str, str], dict[str, dict[Rule, str]]]:
    """(name -> id, name -> {ingress rule: its rule id}) of the found groups.

    Rules are revoked by their ids: exact on AWS, and immune to descriptions and owner fields.
    """
    ids = {group["GroupName"]: group["GroupId"] for group in groups}
    names = {group_id: name for name, group_id in ids.items()}
    rules: dict[str, dict[Rule, str]] = {name: {} for name in ids}
    if ids:
        pages = ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": list(ids.values())}]
        )
        for page in pages:
            for entry in page["SecurityGroupRules"]:
                if not entry["IsEgress"] and entry["GroupId"] in names:
                    rules[names[entry["GroupId"]]][rule_of(entry, names)] = entry["SecurityGroupRuleId"]
    return ids, rules


def create_group(ec2, prefix: str, name: str, vpc_id: str) -> str:
    role = next(role for role, group in group_names(prefix).items() if group == name)
    what = "RDS instance" if role == "rds" else f"{role} hosts"
    return ec2.create_security_group(
        GroupName=name,
        Description=f"{prefix} {what} (managed by provision.py)",
        VpcId=vpc_id,
        TagSpecifications=tag_specs(("security-group",), prefix, name, role),
    )["GroupId"]


def authorize(ec2, group_id: str, rules: dict[Rule, str], ids: dict[str, str]) -> dict[Rule, str]:
    """Allow the rules (rule -> description) in one call; returns rule -> its rule id."""
    answer = ec2.authorize_security_group_ingress(
        GroupId=group_id, IpPermissions=[permission_of(rule, ids, text) for rule, text in rules.items()]
    )
    names = {group: name for name, group in ids.items()}
    return {rule_of(entry, names): entry["SecurityGroupRuleId"] for entry in answer.get("SecurityGroupRules", [])}


def revoke(ec2, group_id: str, rule_ids: list[str]) -> None:
    ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=rule_ids)


def delete_groups(ec2, groups: dict[str, str], rules: dict[str, dict[Rule, str]], progress) -> None:
    """Delete the groups in AWS's order: first drop every rule naming another group, then the groups.

    Real AWS refuses (DependencyViolation) to delete a group another group's rule references, or
    that a just-terminated instance's network interface still uses; the latter clears within
    minutes, so it is retried.
    """
    for name, group_id in groups.items():
        referencing = [rule_id for rule, rule_id in rules.get(name, {}).items() if rule.source.startswith("sg:")]
        if referencing:
            revoke(ec2, group_id, referencing)
    for name, group_id in groups.items():
        _delete_group(ec2, name, group_id, progress)
        progress(f"  deleted security group {name}")


def _delete_group(ec2, name: str, group_id: str, progress) -> None:
    retry_while_busy(
        lambda: ec2.delete_security_group(GroupId=group_id),
        busy=("DependencyViolation",),
        gone=("InvalidGroup.NotFound",),
        patience=PATIENCE_SECONDS,
        pause=RETRY_SECONDS,
        waiting=lambda code: f"  {name} is still in use (network interfaces of terminated hosts); retrying",
        progress=progress,
        clock=time,
    )
