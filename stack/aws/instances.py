"""The project's EC2 instances: found by tags, launched with a fresh ClientToken, waited on."""

import socket
import time
import uuid

from botocore.exceptions import ClientError

from stack import ssh_wait
from stack.aws.plan import LIVE_STATES, Instance
from stack.aws.tags import project_filters, tag_map, tag_specs
from stack.errors import UserError

POLL_SECONDS = 5


def _instance(raw: dict) -> Instance:
    tags = tag_map(raw)
    return Instance(
        id=raw["InstanceId"],
        name=tags.get("Name", raw["InstanceId"]),
        state=raw["State"]["Name"],
        role=tags.get("Role"),
        key=tags.get("BackendKey") or None,
        instance_type=raw.get("InstanceType", ""),
        private_ip=raw.get("PrivateIpAddress"),
        public_ip=raw.get("PublicIpAddress"),
        zone=raw.get("Placement", {}).get("AvailabilityZone"),
        launched=str(raw.get("LaunchTime", "")),
    )


def describe(ec2, filters: list[dict]) -> list[Instance]:
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            found += [_instance(raw) for raw in reservation["Instances"]]
    return found


def find_instances(ec2, prefix: str) -> tuple[dict[str, Instance], list[Instance]]:
    """(name -> the oldest live instance of that name, the younger duplicates)."""
    live = describe(ec2, project_filters(prefix) + [{"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
    by_name: dict[str, Instance] = {}
    duplicates = []
    for instance in sorted(live, key=lambda i: (i.launched, i.id)):
        if instance.name in by_name:
            duplicates.append(instance)
        else:
            by_name[instance.name] = instance
    return by_name, duplicates


def launch(
    ec2,
    prefix: str,
    name: str,
    role: str,
    key: str | None,
    instance_type: str,
    image_id: str,
    key_name: str,
    group_id: str,
    subnets: list[dict],
    progress,
) -> Instance:
    """One instance in the first offered zone with capacity (InsufficientInstanceCapacity: next zone)."""
    tags = tag_specs(("instance", "volume"), prefix, name, role)
    if key:
        tags[0]["Tags"].append({"Key": "BackendKey", "Value": key})
    for index, subnet in enumerate(subnets):
        try:
            raw = ec2.run_instances(
                ImageId=image_id,
                InstanceType=instance_type,
                MinCount=1,
                MaxCount=1,
                KeyName=key_name,
                SubnetId=subnet["SubnetId"],
                SecurityGroupIds=[group_id],
                TagSpecifications=tags,
                # A fresh token per attempt: botocore's own retries of this call reuse it (no double
                # launch), while a later run never gets back an instance terminated meanwhile.
                ClientToken=str(uuid.uuid4()),
                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            )["Instances"][0]
            return _instance(raw)
        except ClientError as error:
            if error.response["Error"]["Code"] != "InsufficientInstanceCapacity" or index == len(subnets) - 1:
                raise
            progress(f"  no {instance_type} capacity in {subnet['AvailabilityZone']}; trying the next zone")
    raise AssertionError("unreachable")


def wait_for_states(ec2, ids: list[str], wanted: str, progress, timeout: float = 600) -> dict[str, Instance]:
    """Poll until every instance is in `wanted`, printing who is still waiting."""
    deadline = time.monotonic() + timeout
    while True:
        found = {i.id: i for i in describe(ec2, [{"Name": "instance-id", "Values": ids}])}
        waiting = sorted(f"{i.name} ({i.state})" for i in found.values() if i.state != wanted)
        if not waiting:
            return found
        if wanted == "running" and any(i.state in ("terminated", "shutting-down") for i in found.values()):
            dead = [i.name for i in found.values() if i.state in ("terminated", "shutting-down")]
            raise UserError(
                f"{', '.join(dead)} stopped while starting (see the EC2 console's system log); "
                "re-run python provision.py to replace it"
            )
        if time.monotonic() > deadline:
            raise UserError(f"timed out waiting for {wanted}: {', '.join(waiting)}; re-run to continue")
        progress(f"  waiting for {wanted}: {', '.join(waiting)}")
        time.sleep(POLL_SECONDS)


def wait_for_ssh(hosts: dict[str, tuple[str, int]], progress, timeout: float = 600) -> None:
    """Wait until each (address, port) answers with an SSH banner (cloud-init starts sshd late)."""
    ssh_wait.wait_for_ssh(
        {name: address for name, (address, _port) in hosts.items()},
        lambda name: _ssh_answers(*hosts[name]),
        progress,
        timeout=timeout,
        poll=POLL_SECONDS,
        report_every=POLL_SECONDS,
        hint=lambda names: (
            "check that admin_cidr matches your address (curl -s https://checkip.amazonaws.com), then re-run"
        ),
    )


def _ssh_answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5) as connection:
            connection.settimeout(5)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False
