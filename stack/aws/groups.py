"""The project's security groups in the default VPC: find, create, converge rules, delete in order."""

import time

from botocore.exceptions import ClientError

from stack.aws.rules import Rule, group_names, permission_of, rules_from_permissions
from stack.aws.tags import tag_specs

ROLE_OF_GROUP = {"db": "db", "backends": "backend", "kong": "kong"}


def find_groups(ec2, prefix: str, vpc_id: str) -> list[dict]:
    """The project's groups, by name within the VPC (names are unique per VPC)."""
    return ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "group-name", "Values": list(group_names(prefix).values())},
    ])["SecurityGroups"]


def actual_rules(groups: list[dict]) -> tuple[dict[str, str], dict[str, set[Rule]]]:
    """(name -> id, name -> ingress rules) of the found groups."""
    ids = {group["GroupName"]: group["GroupId"] for group in groups}
    names = {group_id: name for name, group_id in ids.items()}
    return ids, {group["GroupName"]: rules_from_permissions(group.get("IpPermissions", []), names)
                 for group in groups}


def create_group(ec2, prefix: str, name: str, vpc_id: str) -> str:
    role = next(role for role, group in group_names(prefix).items() if group == name)
    return ec2.create_security_group(
        GroupName=name, Description=f"{prefix} {role} hosts (managed by provision.py)", VpcId=vpc_id,
        TagSpecifications=tag_specs(("security-group",), prefix, name, role),
    )["GroupId"]


def authorize(ec2, group_id: str, rules: dict[Rule, str], ids: dict[str, str]) -> None:
    """All missing rules of one group in one call."""
    ec2.authorize_security_group_ingress(
        GroupId=group_id, IpPermissions=[permission_of(rule, ids, text) for rule, text in rules.items()])


def revoke(ec2, group_id: str, rules: list[Rule], ids: dict[str, str]) -> None:
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[permission_of(rule, ids) for rule in rules])


def delete_groups(ec2, groups: dict[str, str], rules: dict[str, set[Rule]], progress, patience: float = 300) -> None:
    """Delete the groups in AWS's order: first drop every rule naming another group, then the groups.

    Real AWS refuses (DependencyViolation) to delete a group another group's rule references, or
    that a just-terminated instance's network interface still uses; the latter clears within
    minutes, so it is retried.
    """
    for name, group_id in groups.items():
        referencing = [rule for rule in rules.get(name, ()) if rule.source.startswith("sg:")]
        if referencing:
            revoke(ec2, group_id, referencing, groups)
    for name, group_id in groups.items():
        deadline = time.monotonic() + patience
        while True:
            try:
                ec2.delete_security_group(GroupId=group_id)
                break
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code == "InvalidGroup.NotFound":
                    break
                if code != "DependencyViolation" or time.monotonic() > deadline:
                    raise
                progress(f"  {name} is still in use (network interfaces of terminated hosts); retrying")
                time.sleep(10)
        progress(f"  deleted security group {name}")
