"""The tags that identify the project's resources (never the AMI: a new Ubuntu build is no new host)."""

MANAGED_BY = "provision.py"


def tags(prefix: str, name: str, role: str | None = None) -> list[dict]:
    values = {"Project": prefix, "Name": name, "ManagedBy": MANAGED_BY}
    if role:
        values["Role"] = role
    return [{"Key": key, "Value": value} for key, value in values.items()]


def tag_specs(kinds: tuple[str, ...], prefix: str, name: str, role: str | None = None) -> list[dict]:
    return [{"ResourceType": kind, "Tags": tags(prefix, name, role)} for kind in kinds]


def project_filters(prefix: str) -> list[dict]:
    return [{"Name": "tag:Project", "Values": [prefix]}, {"Name": "tag:ManagedBy", "Values": [MANAGED_BY]}]


def tag_map(resource: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}
