"""Desired versus actual, as a list of actions, rendered like `terraform plan`. No boto3 here.

"+" creates, "~" changes in place (start a stopped host, update an alarm), "-" destroys
(terminate, revoke, delete): every "-" needs --yes or a typed "yes".
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from stack.aws.balancing import LoadBalancing
from stack.aws.rds_model import RdsActual
from stack.aws.rules import Rule, desired_rules, group_names
from stack.provider import plan_summary
from stack.settings import Settings, host_names

LIVE_STATES = ("pending", "running", "stopping", "stopped")
# EC2's recover action needs EBS-only storage: no instance-store families (i3, d2, m5d, c6gd, ...),
# no bare metal, no previous generation.
NO_RECOVER = re.compile(r"^([dhi]\d|z1d|t1|m1|m2|c1|cc|cr|hs|[a-z]+\d+[a-z]*d[a-z]*$)")


@dataclass
class Instance:
    id: str
    name: str
    state: str
    role: str | None = None
    key: str | None = None
    instance_type: str = ""
    private_ip: str | None = None
    public_ip: str | None = None
    zone: str | None = None
    launched: str = ""


@dataclass
class Alarm:
    metric: str
    instance_id: str | None
    actions: tuple[str, ...]


@dataclass
class Actual:
    """What exists in the account, found by tags and names (see discover.py)."""

    vpc_id: str = ""
    key_pair_exists: bool = False
    groups: dict[str, str] = field(default_factory=dict)  # name -> id
    rules: dict[str, dict[Rule, str]] = field(default_factory=dict)  # group name -> {rule: rule id}
    instances: dict[str, Instance] = field(default_factory=dict)  # desired-or-not name -> instance
    duplicates: list[Instance] = field(default_factory=list)  # same Name launched twice
    topic_arn: str | None = None
    subscriptions: dict[str, str] = field(default_factory=dict)  # endpoint -> arn
    alarms: dict[str, Alarm] = field(default_factory=dict)
    lb: LoadBalancing = field(default_factory=LoadBalancing)  # the gateway's, when looked for
    rds: RdsActual | None = None  # the RDS instance and subnet group; None: not looked at


@dataclass
class Action:
    op: str  # "+", "~", "-"
    # key_pair, security_group, ingress, instance, sns_topic, sns_subscription, alarm, and the
    # gateway's load_balancer, target_group, listener, target (lb_plan.py)
    kind: str
    name: str
    detail: str = ""
    data: dict = field(default_factory=dict)

    @property
    def destructive(self) -> bool:
        return self.op == "-"

    @property
    def op_name(self) -> str:
        return {"+": "create", "~": "change", "-": "destroy"}[self.op]


def key_pair_name(settings: Settings) -> str:
    return settings.key_name or f"{settings.project_prefix}-key"


def topic_name(settings: Settings) -> str:
    return f"{settings.project_prefix}-alerts"


def aws_host_names(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """The EC2 hosts: with db_service rds, RDS runs the database and there is no db host."""
    return host_names(settings, db_host=settings.db_service == "host")


def recover_supported(instance_type: str) -> bool:
    family, _, size = instance_type.partition(".")
    return not (NO_RECOVER.match(family) or size.startswith("metal"))


def instance_type_of(settings: Settings, role: str) -> str:
    return settings.kong_instance_type if role == "kong" else settings.instance_type


def desired_alarms(settings: Settings, region: str, topic_arn: str, ids: Mapping[str, str | None]) -> dict[str, Alarm]:
    """Alarm name -> Alarm for each host: status checks mail the manager; system checks also recover."""
    alarms = {}
    for name, (role, _key) in aws_host_names(settings).items():
        instance_id = ids.get(name)
        alarms[f"{name}-status-check"] = Alarm("StatusCheckFailed", instance_id, (topic_arn,))
        if recover_supported(instance_type_of(settings, role)):
            recover = f"arn:aws:automate:{region}:ec2:recover"
            alarms[f"{name}-auto-recover"] = Alarm(
                "StatusCheckFailed_System", instance_id, tuple(sorted((recover, topic_arn)))
            )
    return alarms


def plan_apply(settings: Settings, actual: Actual, region: str, image: str = "") -> list[Action]:
    actions: list[Action] = []
    hosts = aws_host_names(settings)

    if not settings.key_name and not actual.key_pair_exists:
        actions.append(Action("+", "key_pair", key_pair_name(settings), "ed25519, generated locally"))

    wanted_rules = desired_rules(settings)
    for group in wanted_rules:
        if group not in actual.groups:
            actions.append(Action("+", "security_group", group, f"in {actual.vpc_id or 'the default VPC'}"))
    for group, rules in wanted_rules.items():
        have = actual.rules.get(group, {})
        for rule in sorted(set(rules) - set(have), key=str):
            actions.append(Action("+", "ingress", group, rule.describe(), {"rule": rule, "text": rules[rule]}))
        for rule in sorted(set(have) - set(rules), key=str):
            actions.append(Action("-", "ingress", group, rule.describe(), {"rule": rule, "id": have[rule]}))

    for name, (role, key) in hosts.items():
        found = actual.instances.get(name)
        kind = instance_type_of(settings, role)
        if found is None:
            detail = ", ".join(part for part in (kind, image) if part)
            actions.append(Action("+", "instance", name, detail, {"role": role, "key": key, "type": kind}))
        elif found.state in ("stopped", "stopping"):
            actions.append(Action("~", "instance", name, f"{found.id}: start ({found.state})", {"id": found.id}))
    for name, found in sorted(actual.instances.items()):
        if name not in hosts:
            actions.append(Action("-", "instance", name, f"{found.id}: terminate", {"id": found.id}))
    for found in actual.duplicates:
        actions.append(Action("-", "instance", found.name, f"{found.id}: terminate (duplicate)", {"id": found.id}))

    actions += _plan_alerts(settings, actual, region)
    return actions


def _plan_alerts(settings: Settings, actual: Actual, region: str) -> list[Action]:
    actions = []
    email = settings.manager_email
    if not email:
        for name in sorted(actual.alarms):
            actions.append(Action("-", "alarm", name, "manager_email is unset"))
        if actual.topic_arn:
            actions.append(
                Action("-", "sns_topic", topic_name(settings), "manager_email is unset", {"arn": actual.topic_arn})
            )
        return actions
    if not actual.topic_arn:
        actions.append(Action("+", "sns_topic", topic_name(settings)))
    if email not in actual.subscriptions:
        actions.append(Action("+", "sns_subscription", email, "e-mail; confirm the link AWS sends"))
    for endpoint, arn in sorted(actual.subscriptions.items()):
        if endpoint != email and arn.startswith("arn:"):
            actions.append(Action("-", "sns_subscription", endpoint, "no longer manager_email", {"arn": arn}))
    ids = {name: found.id for name, found in actual.instances.items()}
    wanted = desired_alarms(settings, region, actual.topic_arn or "(new topic)", ids)
    for name, alarm in wanted.items():
        have = actual.alarms.get(name)
        if have is None:
            actions.append(Action("+", "alarm", name, alarm.metric))
        elif actual.topic_arn and have != alarm:
            actions.append(Action("~", "alarm", name, f"{alarm.metric}: update instance or actions"))
    for name in sorted(set(actual.alarms) - set(wanted)):
        actions.append(Action("-", "alarm", name, "its host is gone"))
    return actions


def plan_destroy(settings: Settings, actual: Actual, only: tuple[str, ...] = ()) -> list[Action]:
    """Everything of the project (or just the `only` hosts and their alarms), for `destroy`."""
    targets = set(only) if only else set(actual.instances)
    actions = [
        Action("-", "instance", name, f"{found.id}: terminate", {"id": found.id})
        for name, found in sorted(actual.instances.items())
        if name in targets
    ]
    if not only:
        actions += [
            Action("-", "instance", found.name, f"{found.id}: terminate (duplicate)", {"id": found.id})
            for found in actual.duplicates
        ]
    for name in sorted(actual.alarms):
        if not only or name.rsplit("-", 2)[0] in targets:
            actions.append(Action("-", "alarm", name))
    if only:
        return actions
    if actual.topic_arn:
        actions.append(
            Action("-", "sns_topic", topic_name(settings), "and its subscriptions", {"arn": actual.topic_arn})
        )
    for group in group_names(settings.project_prefix).values():
        if group in actual.groups:
            actions.append(Action("-", "security_group", group, actual.groups[group]))
    if not settings.key_name and actual.key_pair_exists:
        actions.append(Action("-", "key_pair", key_pair_name(settings), "the local private key is kept"))
    return actions


def summary(actions: list[Action]) -> str:
    counts = {op: sum(1 for action in actions if action.op == op) for op in "+~-"}
    return plan_summary({"to add": counts["+"], "to change": counts["~"], "to destroy": counts["-"]})


def render(actions: list[Action]) -> str:
    if not actions:
        return "No changes: the AWS resources match the settings."
    width = max(len(action.kind) for action in actions)
    lines = [f"  {a.op} {a.kind:<{width}}  {a.name}" + (f"  ({a.detail})" if a.detail else "") for a in actions]
    return "\n".join(lines + ["", summary(actions)])
