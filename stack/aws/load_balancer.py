"""The gateway's Network Load Balancer (elbv2): find it by name and tags, create its parts, move
Kong nodes in and out of its target group, take it apart in order. Names and values: lb_plan.py."""

import time

from botocore.exceptions import ClientError

from stack.aws.balancing import Balancer, LoadBalancing, TargetGroup
from stack.aws.lb_plan import (
    CROSS_ZONE,
    DELAY,
    HEALTH,
    LISTENER_PORT,
    balancer_name,
    desired_health,
    group_name,
    is_group_of,
)
from stack.aws.retry import retry_while_busy
from stack.aws.tags import MANAGED_BY, tag_map, tags
from stack.errors import UserError
from stack.settings import Settings

POLL_SECONDS = 5
REPORT_SECONDS = 15  # a waiting line at most this often, unless what is awaited changed
IN_USE_PATIENCE = 120
# A node put back is healthy after healthy_threshold checks of interval seconds (2 x 10 s), plus
# the time AWS takes to start checking a new target (about a minute on a real NLB).
HEALTHY_TIMEOUT = 300


def target_states(elbv2, target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, str]:
    """instance id -> its state in the target group (initial, healthy, unhealthy, draining, unused...)."""
    asked = {"Targets": [{"Id": instance_id} for instance_id in instance_ids]} if instance_ids else {}
    answer = elbv2.describe_target_health(TargetGroupArn=target_group_arn, **asked)
    return {
        entry["Target"]["Id"]: entry["TargetHealth"]["State"]
        for entry in answer["TargetHealthDescriptions"]
        if entry["TargetHealth"]["State"] != "unused" or entry["TargetHealth"].get("Reason") != "Target.NotRegistered"
    }


def _reporter(progress):
    """progress(), but a line repeating the last one only every REPORT_SECONDS."""
    last: list = ["", 0.0]  # the line, when

    def report(line: str) -> None:
        now = time.monotonic()
        if line != last[0] or now - last[1] >= REPORT_SECONDS:
            progress(line)
            last[:] = [line, now]

    return report


def wait_drained(elbv2, target_group_arn: str, names: dict[str, str], progress, timeout: float) -> None:
    """Wait until none of the instances (id -> host name) is registered or draining any more."""
    deadline = time.monotonic() + timeout
    report = _reporter(progress)
    while True:
        states = target_states(elbv2, target_group_arn, list(names))
        # "unused": no traffic goes there any more (deregistered, or its instance stopped or terminated).
        waiting = sorted(f"{names[i]} ({state})" for i, state in states.items() if i in names and state != "unused")
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"timed out waiting for the load balancer to drain {', '.join(waiting)}; re-run to continue"
            )
        report(f"  draining from the load balancer: {', '.join(waiting)}")
        time.sleep(POLL_SECONDS)


def wait_healthy(
    elbv2, target_group_arn: str, names: dict[str, str], progress, timeout: float = HEALTHY_TIMEOUT
) -> None:
    """Wait until every instance (id -> host name) passes the load balancer's health check."""
    deadline = time.monotonic() + timeout
    report = _reporter(progress)
    while True:
        states = target_states(elbv2, target_group_arn, list(names))
        waiting = sorted(f"{names[i]} ({states.get(i, 'not registered')})" for i in names if states.get(i) != "healthy")
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"{', '.join(waiting)} did not turn healthy in the load balancer within {int(timeout)} s: "
                "check Kong on that host (python provision.py status), then re-run"
            )
        report(f"  waiting for the load balancer's health check: {', '.join(waiting)}")
        time.sleep(POLL_SECONDS)


def deregister(elbv2, target_group_arn: str, instance_ids: list[str]) -> None:
    try:
        elbv2.deregister_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": i} for i in instance_ids])
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidTarget":  # already gone
            raise


def register(elbv2, target_group_arn: str, instance_ids: list[str]) -> None:
    elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": i} for i in instance_ids])


def take_out(elbv2, target_group_arn: str, instance_id: str, name: str, delay: int, progress) -> None:
    """Deregister one node and wait out its drain (the deregistration delay, plus AWS's own lag)."""
    progress(f"  taking {name} out of the load balancer (up to {delay} s for its requests to finish)")
    deregister(elbv2, target_group_arn, [instance_id])
    wait_drained(elbv2, target_group_arn, {instance_id: name}, progress, timeout=delay + HEALTHY_TIMEOUT)
    progress(f"  {name} is out of the load balancer")


def put_in(elbv2, target_group_arn: str, instance_id: str, name: str, progress) -> None:
    """Register one node and wait until the load balancer finds it healthy."""
    progress(f"  putting {name} back into the load balancer")
    register(elbv2, target_group_arn, [instance_id])
    wait_healthy(elbv2, target_group_arn, {instance_id: name}, progress)
    progress(f"  {name} is healthy in the load balancer")


# finding ------------------------------------------------------------------------------------------
def find(elbv2, settings: Settings) -> LoadBalancing:
    """The project's NLB (by name, checked by its tags) and target groups (by name and tags)."""
    prefix = settings.project_prefix
    found = LoadBalancing()
    try:
        raw = elbv2.describe_load_balancers(Names=[balancer_name(settings)])["LoadBalancers"][0]
    except ClientError as error:
        if error.response["Error"]["Code"] != "LoadBalancerNotFound":
            raise
        raw = None
    candidates = []
    for page in elbv2.get_paginator("describe_target_groups").paginate():
        candidates += [group for group in page["TargetGroups"] if is_group_of(prefix, group["TargetGroupName"])]
    arns = ([raw["LoadBalancerArn"]] if raw else []) + [group["TargetGroupArn"] for group in candidates]
    tagged = _tags(elbv2, arns)
    if raw:
        if not _ours(tagged.get(raw["LoadBalancerArn"], {}), prefix):
            raise UserError(
                f"a load balancer named {raw['LoadBalancerName']} exists but is not project {prefix}'s "
                "(no Project/ManagedBy tags): delete or rename it, or choose another project_prefix"
            )
        found.balancer = _balancer(elbv2, raw)
    for group in candidates:
        if _ours(tagged.get(group["TargetGroupArn"], {}), prefix):
            found.groups[group["TargetGroupName"]] = _group(elbv2, group)
    return found


def _tags(elbv2, arns: list[str]) -> dict[str, dict[str, str]]:
    tagged = {}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for entry in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            tagged[entry["ResourceArn"]] = tag_map(entry)
    return tagged


def _ours(tags: dict[str, str], prefix: str) -> bool:
    return tags.get("Project") == prefix and tags.get("ManagedBy") == MANAGED_BY


def _balancer(elbv2, raw: dict) -> Balancer:
    arn = raw["LoadBalancerArn"]
    attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    cross_zone = any(a["Key"] == CROSS_ZONE and a["Value"] == "true" for a in attributes)
    listeners = {}
    for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
        forward = [a.get("TargetGroupArn") for a in listener.get("DefaultActions", []) if a["Type"] == "forward"]
        listeners[listener["ListenerArn"]] = (listener["Protocol"], listener["Port"], forward[0] if forward else None)
    return Balancer(arn, raw["LoadBalancerName"], raw["DNSName"], cross_zone, listeners)


def _group(elbv2, raw: dict) -> TargetGroup:
    arn = raw["TargetGroupArn"]
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    delay = next((int(a["Value"]) for a in attributes if a["Key"] == DELAY), None)
    health = {key: raw.get(key) for key in (*HEALTH, "HealthCheckPath", "Matcher")}
    return TargetGroup(arn, raw["TargetGroupName"], raw["Port"], health, delay, target_states(elbv2, arn))


# creating and changing ----------------------------------------------------------------------------
def create_balancer(elbv2, settings: Settings, subnet_ids: list[str]) -> Balancer:
    name = balancer_name(settings)
    raw = elbv2.create_load_balancer(
        Name=name,
        Subnets=subnet_ids,
        Scheme="internet-facing",
        Type="network",
        IpAddressType="ipv4",
        Tags=tags(settings.project_prefix, name, "kong"),
    )["LoadBalancers"][0]
    set_cross_zone(elbv2, raw["LoadBalancerArn"])
    return Balancer(raw["LoadBalancerArn"], name, raw["DNSName"], True)


def set_cross_zone(elbv2, arn: str) -> None:
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[{"Key": CROSS_ZONE, "Value": "true"}])


def create_group(elbv2, settings: Settings, vpc_id: str) -> TargetGroup:
    name = group_name(settings)
    health = desired_health(settings)
    raw = elbv2.create_target_group(
        Name=name,
        Protocol="TCP",
        Port=settings.gateway.proxy_port,
        VpcId=vpc_id,
        TargetType="instance",
        Tags=tags(settings.project_prefix, name, "kong"),
        **health,
    )["TargetGroups"][0]
    set_delay(elbv2, raw["TargetGroupArn"], settings.gateway.deregistration_delay)
    return TargetGroup(raw["TargetGroupArn"], name, raw["Port"], health, settings.gateway.deregistration_delay)


def update_group(elbv2, settings: Settings, group: TargetGroup) -> None:
    health = desired_health(settings)
    if any(group.health.get(key) != value for key, value in health.items()):
        changeable = {key: value for key, value in health.items() if key != "HealthCheckProtocol"}
        elbv2.modify_target_group(TargetGroupArn=group.arn, HealthCheckProtocol="HTTP", **changeable)
        group.health = health
    if group.delay != settings.gateway.deregistration_delay:
        set_delay(elbv2, group.arn, settings.gateway.deregistration_delay)
        group.delay = settings.gateway.deregistration_delay


def set_delay(elbv2, arn: str, seconds: int) -> None:
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=[{"Key": DELAY, "Value": str(seconds)}])


def create_listener(elbv2, settings: Settings, balancer: Balancer, group: TargetGroup) -> str:
    arn = elbv2.create_listener(
        LoadBalancerArn=balancer.arn,
        Protocol="TCP",
        Port=LISTENER_PORT,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group.arn}],
        Tags=tags(settings.project_prefix, balancer.name, "kong"),
    )["Listeners"][0]["ListenerArn"]
    balancer.listeners[arn] = ("TCP", LISTENER_PORT, group.arn)
    return arn


def point_listener(elbv2, balancer: Balancer, arn: str, group: TargetGroup) -> None:
    elbv2.modify_listener(
        ListenerArn=arn,
        Protocol="TCP",
        Port=LISTENER_PORT,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group.arn}],
    )
    balancer.listeners[arn] = ("TCP", LISTENER_PORT, group.arn)


# removing -----------------------------------------------------------------------------------------
def delete_group(elbv2, arn: str, progress) -> None:
    """Real AWS refuses (ResourceInUse) while a just-deleted load balancer still lets go of it."""
    retry_while_busy(
        lambda: elbv2.delete_target_group(TargetGroupArn=arn),
        busy=("ResourceInUse",),
        gone=("TargetGroupNotFound",),
        patience=IN_USE_PATIENCE,
        pause=POLL_SECONDS,
        waiting=lambda code: "  the target group is still in use by the load balancer being deleted; retrying",
        progress=progress,
        clock=time,
    )
