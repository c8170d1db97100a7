"""What exists of the gateway's load balancing, as records (found by load_balancer.find, planned by
lb_plan.py, kept in plan.Actual)."""

from dataclasses import dataclass, field


@dataclass
class TargetGroup:
    arn: str
    name: str
    port: int
    health: dict  # the HEALTH keys, HealthCheckPath and Matcher as AWS reports them
    delay: int | None  # deregistration_delay.timeout_seconds
    targets: dict[str, str] = field(default_factory=dict)  # instance id -> state


@dataclass
class Balancer:
    arn: str
    name: str
    dns_name: str
    cross_zone: bool
    listeners: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)  # arn -> (protocol, port, tg)


@dataclass
class LoadBalancing:
    """What exists of the project's load balancing (see load_balancer.find)."""

    balancer: Balancer | None = None
    groups: dict[str, TargetGroup] = field(default_factory=dict)  # name -> group
