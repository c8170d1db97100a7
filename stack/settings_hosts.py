"""The hosts' settings, read by the providers (provision.py): names, where and how big, who may reach them."""

import ipaddress
import re
from typing import Annotated

from stack.settings_types import PRIVATE_RANGES, Cidr, Items, OneOf, Section, Text, is_private, setting

NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
BACKEND_KEY = re.compile(r"[a-z0-9]{1,10}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
AMI = re.compile(r"ami-[0-9a-f]{8,17}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class LocalSubnet(Cidr):
    def more(self, value: str) -> str | None:
        problem = super().more(value)
        if problem or ipaddress.IPv4Network(value).prefixlen != 24:
            return problem or f"expected a /24 such as 10.77.0.0/24, got {value}"
        # Public, loopback or link-local addresses on a bridge would capture someone else's traffic.
        if not is_private(ipaddress.IPv4Network(value)):
            return (
                f"expected a private range (inside {', '.join(map(str, PRIVATE_RANGES[:-1]))} or "
                f"{PRIVATE_RANGES[-1]}), got {value}"
            )
        return None


class HostSettings(Section):
    project_prefix: Annotated[
        str, Text(NAME, "lower-case letters, digits and '-', starting with a letter, at most 20 characters")
    ] = setting(
        default="des",
        description="Prefix of every host and resource name: <prefix>-db, <prefix>-backend-a, <prefix>-kong.",
    )
    region: Annotated[str, Text(REGION, "an AWS region such as us-east-1")] = setting(
        default="us-east-1", description="AWS region (Learner Lab allows us-east-1 and us-west-2)."
    )
    instance_type: Annotated[str, Text(INSTANCE_TYPE, "an EC2 instance type such as t2.nano")] = setting(
        default="t2.nano", description="EC2 type of the database and backend hosts."
    )
    kong_instance_type: Annotated[str, Text(INSTANCE_TYPE, "an EC2 instance type such as t2.small")] = setting(
        default="t2.small", description="EC2 type of the Kong host (Kong needs about 1 GB of memory)."
    )
    ami_id: Annotated[str, Text(AMI, "an AMI id such as ami-0123456789abcdef0")] | None = setting(
        default=None, description="AMI for every host; unset = newest Canonical Ubuntu 24.04 amd64 image."
    )
    key_name: Annotated[str, Text()] | None = setting(
        default=None,
        description="Existing EC2 key pair (Learner Lab: vockey); unset = a project key generated locally.",
    )
    ssh_key_path: Annotated[str, Text()] | None = setting(
        default=None, description="Private key for key_name (e.g. ~/.ssh/labsuser.pem); unused with a generated key."
    )
    ssh_user: Annotated[str, Text(NAME, "a user name")] = setting(
        default="ubuntu",
        description="SSH login user of every host, who runs everything through sudo (Ubuntu images: ubuntu; "
        "local hosts create it at first boot).",
    )
    admin_cidr: Annotated[str, Cidr()] | None = setting(
        default=None, description="Who may SSH to the hosts (your IP/32); unset = anywhere, with a warning."
    )
    manager_email: Annotated[str, Text(EMAIL, "an e-mail address")] | None = setting(
        default=None, description="Address subscribed to status-check alarms (SNS); unset = no alerts."
    )
    backends: Annotated[list[Annotated[str, Text(BACKEND_KEY, "1-10 lower-case letters or digits")]], Items()] = (
        setting(default=["a", "b"], description="Backend keys: one host <prefix>-backend-<key> each.")
    )
    local_subnet: Annotated[str, LocalSubnet()] = setting(
        default="10.77.0.0/24", description="--provider local: the /24 of the local hosts' bridge (the host takes .1)."
    )
    local_distro: Annotated[str, OneOf(("bookworm", "trixie"))] = setting(
        default="bookworm",
        description="--provider local: the hosts' distribution, Debian 12 (bookworm) or 13 (trixie); "
        "together they bracket the AWS hosts' Ubuntu 24.04.",
    )
