"""Kong's settings: the `gateway:` section of config.yml (its health checks under `active:` and
`passive:`) and `kong_admin_cidr`, with their defaults and checks. tasks/kong/render.py turns them
into kong.yml and the container's spec."""

import ipaddress
import re
from typing import Annotated, Any

from stack.settings_types import Cidr, Flag, Items, OneOf, Refused, Section, Text, Whole, is_private, setting

# Kong 2.7 (typedefs.path) rejects empty segments: "//" would pass here and fail at deploy.
URL_PATH = re.compile(r"(?!.*//)/[A-Za-z0-9._~/-]*")
HEADER = re.compile(r"[A-Za-z0-9-]+")
HOST_PORT = re.compile(r"[A-Za-z0-9.-]+:[0-9]{1,5}")
SSH_PORT = 22
# The admin API is full control of the gateway: wider than this, only private ranges are accepted.
WIDEST_ADMIN_PREFIX = 16
# Kong listens on the host's network as the image's unprivileged user: no port below 1024.
UNPRIVILEGED = " (Kong runs unprivileged on the Kong host's network)"


class KongPort(Whole):
    def problem(self, value: Any) -> str:
        if value == SSH_PORT:
            return f"{value} is SSH's port on the Kong host: choose another ({self.low}-{self.high})"
        return super().problem(value)


class AdminCidr(Cidr):
    def more(self, value: str) -> str | None:
        problem = super().more(value)
        if problem:
            return problem
        network = ipaddress.IPv4Network(value)
        if network.prefixlen < WIDEST_ADMIN_PREFIX and not is_private(network):
            return (
                f"{value} would open Kong's admin API (full control of the gateway) to "
                f"{network.num_addresses} addresses; give your own address (x.x.x.x/32) or a range no wider "
                f"than /{WIDEST_ADMIN_PREFIX}, or leave it unset and use the SSH tunnel"
            )
        return None


Probes = Annotated[int, Whole(1, 255)]
Seconds = Annotated[int, Whole(1, 65535)]
Port = Annotated[int, KongPort(1024, 65535, UNPRIVILEGED)]
UrlPath = Annotated[str, Text(URL_PATH, "a path starting with /")]
Milliseconds = Annotated[int, Whole(1, 2147483646)]


class ActiveChecks(Section):
    """Kong probing each backend's health_path itself."""

    interval: Seconds = setting(default=10, description="Seconds between probes of a healthy backend.")
    timeout: Seconds = setting(default=5, description="Seconds before a probe times out.")
    concurrency: Annotated[int, Whole(1, 2147483648)] = setting(default=10, description="Probes run at once.")
    healthy_successes: Probes = setting(default=2, description="Successful probes that mark a backend healthy.")
    healthy_statuses: Annotated[list[Annotated[int, Whole(100, 599)]], Items()] = setting(
        default=[200, 302], description="Statuses that count as success."
    )
    unhealthy_interval: Seconds = setting(
        default=10, description="Seconds between probes of an unhealthy backend (to bring it back)."
    )
    unhealthy_http_failures: Probes = setting(default=3, description="Failed probes that eject a backend.")
    unhealthy_timeouts: Probes = setting(default=3, description="Timed-out probes that eject a backend.")
    unhealthy_tcp_failures: Probes = setting(default=3, description="Refused connections that eject a backend.")


class PassiveChecks(Section):
    """Kong judging each backend by the answers to proxied requests (the circuit breaker)."""

    healthy_successes: Probes = setting(
        default=5, description="Successful proxied responses that mark a backend healthy."
    )
    unhealthy_http_failures: Probes = setting(default=5, description="Failed proxied responses that eject a backend.")
    unhealthy_timeouts: Probes = setting(default=2, description="Timed-out proxied requests that eject a backend.")
    unhealthy_tcp_failures: Probes = setting(default=2, description="Refused proxied connections that eject a backend.")


class Gateway(Section):
    """The `gateway:` section: Kong's container, its ports and how it balances the backends."""

    image: Annotated[str, Text()] = setting(
        default="kong:2.7.2-alpine", description="Kong Docker image (open-source tags: kong:2.7.2-alpine)."
    )
    proxy_port: Port = setting(default=8000, description="Kong proxy port (1024-65535), open to everyone.")
    admin_port: Port = setting(default=8001, description="Kong admin API port, on the Kong host's 127.0.0.1 only.")
    health_path: UrlPath = setting(
        default="/despachos/reporte/",
        description="Path probed on each backend by Kong and by the deploy (200 or 302 = healthy).",
    )
    algorithm: Annotated[str, OneOf(("round-robin", "least-connections", "consistent-hashing"))] = setting(
        default="round-robin", description="Kong load-balancing algorithm."
    )
    target_weight: Annotated[int, Whole(0, 65535)] = setting(default=100, description="Weight of every backend target.")
    retries: Annotated[int, Whole(0, 32767)] = setting(
        default=5, description="Retries of a failed request on another backend."
    )
    connect_timeout_ms: Milliseconds = setting(default=60000, description="Kong connect timeout to a backend.")
    read_timeout_ms: Milliseconds = setting(default=60000, description="Kong read timeout from a backend.")
    write_timeout_ms: Milliseconds = setting(default=60000, description="Kong write timeout to a backend.")
    route_paths: Annotated[list[UrlPath], Items()] = setting(
        default=["/"], description="Paths routed to the backends (not stripped)."
    )
    rate_limit_per_minute: Annotated[int, Whole(1, 1000000)] = setting(
        default=100, description="Requests per minute per client IP."
    )
    request_id_header: Annotated[str, Text(HEADER, "an HTTP header name")] = setting(
        default="X-Kong-Request-ID", description="Correlation id header added to every request and response."
    )
    nodes: Annotated[int, Whole(1, 9)] = setting(
        default=1,
        description="Kong hosts: <prefix>-kong, then <prefix>-kong-2...; 2 or more = behind an AWS Network Load "
        "Balancer.",
    )
    load_balancer: Annotated[bool, Flag()] = setting(
        default=False,
        description="AWS: a Network Load Balancer in front of even one node (so the entry point survives "
        "replacing it); always there with 2 nodes or more.",
    )
    deregistration_delay: Annotated[int, Whole(0, 3600)] = setting(
        default=30, description="Seconds a node leaving the load balancer keeps finishing its requests."
    )
    node_health_path: UrlPath = setting(
        default="/gateway-health",
        description="Path every Kong node answers itself (200, no backend asked, not rate-limited) once it has "
        "loaded kong.yml: the load balancer's health check.",
    )
    rate_limit_redis: Annotated[str, Text(HOST_PORT, "host:port of a Redis")] | None = setting(
        default=None,
        description="A Redis (host:port) the nodes share for an exact rate-limit count; unset = each node counts "
        "rate_limit_per_minute / nodes (rounded up).",
    )
    active: ActiveChecks = setting(default_factory=ActiveChecks)
    passive: PassiveChecks = setting(default_factory=PassiveChecks)

    @property
    def uses_load_balancer(self) -> bool:
        return self.nodes >= 2 or self.load_balancer

    # Runs only when every gateway value is fine on its own, so it never hides a plainer mistake.
    def check_together(self) -> None:
        # Both are published on the Kong host: the same port fails `docker run` after the old
        # container was removed, taking the gateway down.
        if self.admin_port == self.proxy_port:
            raise Refused(f"expected a port other than gateway/proxy_port ({self.proxy_port})", ("admin_port",))
        if self.node_health_path in self.route_paths:
            raise Refused("expected a path other than the gateway/route_paths to the backends", ("node_health_path",))


class KongSettings(Section):
    kong_admin_cidr: Annotated[str, AdminCidr()] | None = setting(
        default=None, description="Who may reach Kong's admin API on 8001; unset = nobody (SSH tunnel only)."
    )
    gateway: Gateway = setting(default_factory=Gateway)
