"""Security groups with least privilege, as data: no boto3 here.

A rule is a tuple (protocol, from_port, to_port, source); source is a CIDR ("0.0.0.0/0") or
"sg:<group name>" for another of the project's groups (or "sg:<id>" for a group that is not).
Only ingress is managed; egress stays AWS's default (all out: apt, Docker Hub, GitHub).

  kong group      proxy_port from anywhere; admin_port only from kong_admin_cidr (when set)
  backends group  app_port only from the kong group
  db group        5432 only from the backends group
  every group     22 from admin_cidr (unset: 0.0.0.0/0, with a warning)
  rds group       db_service rds, instead of the db group: 5432 only from the backends group, no SSH
"""

from typing import NamedTuple

from stack.settings import Settings

ANYWHERE = "0.0.0.0/0"
POSTGRES_PORT = 5432


class Rule(NamedTuple):
    protocol: str
    from_port: int | None
    to_port: int | None
    source: str

    def describe(self) -> str:
        if self.protocol == "-1":
            ports = "all traffic"
        elif self.from_port == self.to_port:
            ports = f"{self.protocol}/{self.from_port}"
        else:
            ports = f"{self.protocol}/{self.from_port}-{self.to_port}"
        source = self.source[3:] if self.source.startswith("sg:") else self.source
        return f"{ports} from {source}"


def group_names(prefix: str) -> dict[str, str]:
    """role -> security group name."""
    return {
        "db": f"{prefix}-db-sg",
        "backend": f"{prefix}-backends-sg",
        "kong": f"{prefix}-kong-sg",
        "rds": f"{prefix}-rds",
    }


def tcp(port: int, source: str) -> Rule:
    return Rule("tcp", port, port, source)


def ssh_source(settings: Settings) -> str:
    return settings.admin_cidr or ANYWHERE


def ssh_warning(settings: Settings) -> str | None:
    if settings.admin_cidr:
        return None
    return (
        "SSH (22) is open to 0.0.0.0/0 because admin_cidr is unset: set admin_cidr: <your IP>/32 "
        "in config.yml (your IP: curl -s https://checkip.amazonaws.com) and re-run to restrict it"
    )


def desired_rules(settings: Settings) -> dict[str, dict[Rule, str]]:
    """Group name -> {rule: description} (the description is shown in the AWS console)."""
    names = group_names(settings.project_prefix)
    ssh = tcp(22, ssh_source(settings))
    ssh_text = "SSH from the admin" if settings.admin_cidr else "SSH from anywhere (set admin_cidr to restrict)"
    gateway = settings.gateway
    kong = {
        tcp(gateway.proxy_port, ANYWHERE): "Kong proxy, public",
        ssh: ssh_text,
    }
    if settings.kong_admin_cidr:
        kong[tcp(gateway.admin_port, settings.kong_admin_cidr)] = "Kong admin API from kong_admin_cidr"
    postgres = tcp(POSTGRES_PORT, f"sg:{names['backend']}")
    database = (
        {names["rds"]: {postgres: "PostgreSQL (RDS) from the backends only"}}
        if settings.db_service == "rds"
        else {names["db"]: {postgres: "PostgreSQL from the backends only", ssh: ssh_text}}
    )
    return {
        names["kong"]: kong,
        names["backend"]: {
            tcp(settings.app_port, f"sg:{names['kong']}"): "Django from Kong only",
            ssh: ssh_text,
        },
        **database,
    }


def rule_of(entry: dict, name_of_group: dict[str, str]) -> Rule:
    """A rule from describe_security_group_rules; known group ids become "sg:<name>"."""
    protocol = entry["IpProtocol"]
    low, high = (None, None) if protocol == "-1" else (entry.get("FromPort"), entry.get("ToPort"))
    if "ReferencedGroupInfo" in entry:
        group = entry["ReferencedGroupInfo"]["GroupId"]
        source = f"sg:{name_of_group.get(group, group)}"
    elif entry.get("PrefixListId"):
        source = f"pl:{entry['PrefixListId']}"
    else:
        source = entry.get("CidrIpv4") or entry["CidrIpv6"]  # a rule without a group or list has one
    return Rule(protocol, low, high, source)


def permission_of(rule: Rule, id_of_group: dict[str, str], description: str | None = None) -> dict:
    """One AWS IpPermission for a rule, to authorize it."""
    permission: dict = {"IpProtocol": rule.protocol}
    if rule.protocol != "-1":
        permission["FromPort"], permission["ToPort"] = rule.from_port, rule.to_port
    extra = {"Description": description} if description else {}
    if rule.source.startswith("sg:"):
        group = rule.source[3:]
        permission["UserIdGroupPairs"] = [{"GroupId": id_of_group.get(group, group), **extra}]
    elif rule.source.startswith("pl:"):
        permission["PrefixListIds"] = [{"PrefixListId": rule.source[3:], **extra}]
    elif ":" in rule.source:
        permission["Ipv6Ranges"] = [{"CidrIpv6": rule.source, **extra}]
    else:
        permission["IpRanges"] = [{"CidrIp": rule.source, **extra}]
    return permission
