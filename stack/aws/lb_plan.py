"""The gateway's Network Load Balancer, desired versus actual, as plan actions. No boto3 here.

  <prefix>-gw                 internet-facing NLB, cross-zone on (an NLB's default is off)
    listener TCP:80           forwards to the target group
  <prefix>-kong-<proxy port>  target group: TCP to Kong's proxy port, instance targets (the NLB
                              keeps the client's address, so Kong's `limit_by: ip` still works),
                              HTTP health check on the node's own route (gateway.node_health_path,
                              which answers 200 only once the node has loaded the project's kong.yml)
    targets                   every Kong node

The target group's name carries the port: a port cannot change in place, so a new proxy_port is a
new group (registered, then the listener switched to it), and the old one is removed after.
"""

from stack.aws.balancing import Balancer, LoadBalancing, TargetGroup
from stack.aws.plan import Action
from stack.settings import Settings, host_names

LISTENER_PORT = 80
# The NLB probes every node every 10 s; 2 answers in a row mark it healthy or unhealthy: a dead
# node gets no new connections after about 20 s.
HEALTH = {
    "HealthCheckProtocol": "HTTP",
    "HealthCheckPort": "traffic-port",
    "HealthCheckIntervalSeconds": 10,
    "HealthCheckTimeoutSeconds": 5,
    "HealthyThresholdCount": 2,
    "UnhealthyThresholdCount": 2,
}
MATCHER = "200"
CROSS_ZONE = "load_balancing.cross_zone.enabled"
DELAY = "deregistration_delay.timeout_seconds"
# Removed in this order: no listener forwards to a group being deleted, no target is left behind.
TEARDOWN = ("target", "listener", "load_balancer", "target_group")


def balancer_name(settings: Settings) -> str:
    return f"{settings.project_prefix}-gw"


def group_name(settings: Settings) -> str:
    return f"{settings.project_prefix}-kong-{settings.gateway.proxy_port}"


def is_group_of(prefix: str, name: str) -> bool:
    return name.startswith(f"{prefix}-kong-") and name.rsplit("-", 1)[-1].isdigit()


def kong_nodes(settings: Settings) -> list[str]:
    return [name for name, (role, _key) in host_names(settings).items() if role == "kong"]


def desired_health(settings: Settings) -> dict:
    return {**HEALTH, "HealthCheckPath": settings.gateway.node_health_path, "Matcher": {"HttpCode": MATCHER}}


def health_text(settings: Settings) -> str:
    return f"HTTP GET {settings.gateway.node_health_path} on the proxy port, 200 = healthy"


def plan_load_balancing(settings: Settings, found: LoadBalancing, instances: dict) -> list[Action]:
    """`instances`: host name -> Instance (plan.Instance) of the project, to name the targets."""
    if not settings.gateway.uses_load_balancer:
        return plan_teardown(found, NOT_WANTED)
    actions: list[Action] = []
    gateway = settings.gateway
    wanted = group_name(settings)
    balancer = found.balancer
    if balancer is None:
        actions.append(Action("+", "load_balancer", balancer_name(settings), "network, internet-facing, cross-zone on"))
    elif not balancer.cross_zone:
        actions.append(Action("~", "load_balancer", balancer.name, "turn cross-zone load balancing on"))
    group = found.groups.get(wanted)
    if group is None:
        delay = gateway.deregistration_delay
        detail = f"TCP:{gateway.proxy_port}, {health_text(settings)}, deregistration delay {delay} s"
        actions.append(Action("+", "target_group", wanted, detail))
    else:
        changed = _group_changes(settings, group)
        if changed:
            actions.append(Action("~", "target_group", wanted, ", ".join(changed)))
    listener = _listener(balancer)
    wanted_arn = group.arn if group else None
    if listener is None:
        actions.append(Action("+", "listener", balancer_name(settings), f"TCP:{LISTENER_PORT} -> {wanted}"))
    elif listener[1] != ("TCP", LISTENER_PORT, wanted_arn):
        actions.append(
            Action("~", "listener", balancer_name(settings), f"TCP:{LISTENER_PORT} -> {wanted}", {"arn": listener[0]})
        )

    names = {instance.id: name for name, instance in instances.items()}
    registered = group.targets if group else {}
    nodes = kong_nodes(settings)
    for name in nodes:
        instance = instances.get(name)
        if instance is None or instance.id not in registered:
            actions.append(Action("+", "target", name, f"register in {wanted}", {"group": wanted}))
    for instance_id in sorted(registered):
        name = names.get(instance_id, instance_id)
        if name not in nodes:
            actions.append(_deregister(settings, wanted, name, instance_id))
    for name, other in sorted(found.groups.items()):
        if name != wanted:
            actions.append(Action("-", "target_group", name, f"port {other.port}: no longer the proxy port"))
    return actions


NOT_WANTED = "gateway.nodes is 1 and gateway.load_balancer is off"


def plan_teardown(found: LoadBalancing, why: str = "") -> list[Action]:
    """Every part of the load balancing, in TEARDOWN order (the targets go with their group)."""
    actions = []
    balancer = found.balancer
    because = f": {why}" if why else ""
    if balancer is not None:
        for arn in sorted(balancer.listeners):
            protocol, port, _group = balancer.listeners[arn]
            actions.append(Action("-", "listener", balancer.name, f"{protocol}:{port}{because}", {"arn": arn}))
        actions.append(Action("-", "load_balancer", balancer.name, f"{balancer.dns_name}{because}"))
    for name, group in sorted(found.groups.items()):
        count = len(group.targets)
        actions.append(Action("-", "target_group", name, f"{count} node{'s' if count != 1 else ''}{because}"))
    return actions


def plan_node_removals(settings: Settings, found: LoadBalancing, instances: dict, only: tuple) -> list[Action]:
    """destroy --only: the named Kong nodes leave the target group (and drain) before termination."""
    actions = []
    for group_name_, group in sorted(found.groups.items()):
        for name in only:
            instance = instances.get(name)
            if instance is not None and instance.id in group.targets:
                actions.append(_deregister(settings, group_name_, name, instance.id))
    return actions


def _deregister(settings: Settings, group: str, name: str, instance_id: str) -> Action:
    delay = settings.gateway.deregistration_delay
    return Action(
        "-",
        "target",
        name,
        f"deregister from {group}, drain up to {delay} s",
        {"group": group, "id": instance_id},
    )


def _group_changes(settings: Settings, group: TargetGroup) -> list[str]:
    changes = []
    wanted = desired_health(settings)
    if any(group.health.get(key) != value for key, value in wanted.items()):
        changes.append(health_text(settings))
    if group.delay != settings.gateway.deregistration_delay:
        changes.append(f"deregistration delay {group.delay} -> {settings.gateway.deregistration_delay} s")
    return changes


def _listener(balancer: Balancer | None) -> tuple[str, tuple[str, int, str | None]] | None:
    """The listener on port 80 (or the only one), as (arn, (protocol, port, target group arn))."""
    if balancer is None or not balancer.listeners:
        return None
    for arn, spec in sorted(balancer.listeners.items()):
        if spec[1] == LISTENER_PORT:
            return arn, spec
    return sorted(balancer.listeners.items())[0]


def lb_first(actions: list[Action]) -> list[Action]:
    """The destructive actions with the load balancing's removals first, in TEARDOWN order: a node
    leaves the target group (and drains) before it is terminated."""
    order = {kind: index for index, kind in enumerate(TEARDOWN)}
    return sorted(actions, key=lambda action: order.get(action.kind, len(order)))


def lb_record(found: LoadBalancing, settings: Settings) -> dict | None:
    """The state's `aws.load_balancer`: what provision.py status, outputs and the rolling deploy
    (stack/aws/provider.py's gateway_out/gateway_in) read."""
    balancer = found.balancer
    group = found.groups.get(group_name(settings))
    if balancer is None and group is None:
        return None
    listener = _listener(balancer)
    return {
        "name": balancer.name if balancer else None,
        "arn": balancer.arn if balancer else None,
        "dns_name": balancer.dns_name if balancer else None,
        "listener_arn": listener[0] if listener else None,
        "target_group": group.name if group else None,
        "target_group_arn": group.arn if group else None,
    }
