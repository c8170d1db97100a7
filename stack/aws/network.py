"""The default VPC, a subnet in a zone that offers the instance type, the subnets of the RDS instance."""

from stack.errors import UserError


def default_vpc(ec2) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise UserError(
            "this region has no default VPC: create one with aws ec2 create-default-vpc "
            "(or the VPC console: Actions > Create default VPC) and re-run"
        )
    return vpcs[0]["VpcId"]


def subnets_for(ec2, vpc_id: str, instance_types: list[str]) -> dict[str, list[dict]]:
    """Type -> default subnets whose zone offers it, in zone order (the first is tried first)."""
    offers = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": instance_types}]
    )["InstanceTypeOfferings"]
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "default-for-az", "Values": ["true"]},
        ]
    )["Subnets"]
    chosen = {}
    for instance_type in instance_types:
        zones = {offer["Location"] for offer in offers if offer["InstanceType"] == instance_type}
        if not zones:
            raise UserError(
                f"instance type {instance_type} is not offered in this region: check instance_type / "
                f"kong_instance_type (e.g. t2.nano, t3.micro, t2.small) and region"
            )
        usable = sorted(
            (s for s in subnets if s["AvailabilityZone"] in zones and s.get("MapPublicIpOnLaunch")),
            key=lambda s: s["AvailabilityZone"],
        )
        if not usable:
            raise UserError(
                f"no default subnet of {vpc_id} that gives public IPs is in a zone offering "
                f"{instance_type} ({', '.join(sorted(zones))}): create one with aws ec2 "
                f"create-default-subnet --availability-zone {sorted(zones)[0]}, or turn on "
                f"auto-assign public IPv4 on a default subnet"
            )
        chosen[instance_type] = usable
    return chosen


def db_subnets(ec2, vpc_id: str) -> list[dict]:
    """The default VPC's default subnets, for the DB subnet group (RDS wants two zones or more,
    even single-AZ: a Multi-AZ standby or a failover needs the second)."""
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "default-for-az", "Values": ["true"]},
        ]
    )["Subnets"]
    zones = sorted({subnet["AvailabilityZone"] for subnet in subnets})
    if len(zones) < 2:
        where = zones[0] if zones else "none"
        raise UserError(
            f"RDS needs default subnets of {vpc_id} in two zones or more, there are in: {where}: create "
            f"one with aws ec2 create-default-subnet --availability-zone <another zone of the region>"
        )
    return sorted(subnets, key=lambda subnet: (subnet["AvailabilityZone"], subnet["SubnetId"]))
