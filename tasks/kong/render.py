"""Kong, as pure data: the declarative kong.yml and the `kong` container's spec.

Nothing here touches a host; tasks/kong/deploy.py ships the results, tasks/kong/commands.py builds
the command lines. The names below are the contract between the config, the container and
`provision.py status`.
"""

import hashlib
import json
import math

from tasks.shared import UPSTREAM
from tasks.templating import render_template

SERVICE = "backend-service"
ROUTE = "backend-route"
HEALTH_ROUTE = "gateway-health"

CONTAINER = "kong"
# The container's label holding the hash of its spec: pyinfra's docker.container cannot tell
# that a container's image, ports or env changed (pyinfra issue #1561), this label can.
SPEC_LABEL = "stack.kong.spec"

HOST_DIR = "/opt/kong/declarative"
CONTAINER_DIR = "/kong/declarative"
CONFIG_NAME = "kong.yml"
# A new config waits here until Kong has parsed it, so a bad one never replaces the serving one.
CANDIDATE_NAME = "kong.next.yml"
CONFIG = f"{HOST_DIR}/{CONFIG_NAME}"
CANDIDATE = f"{HOST_DIR}/{CANDIDATE_NAME}"


def targets(private_ips: list[str], app_port: int) -> list[str]:
    return [f"{ip}:{app_port}" for ip in private_ips]


def rate_limit(gateway) -> dict:
    """The rate-limiting plugin's count: each node's share of the limit (Kong's `local` policy
    counts per node), or the whole limit in a Redis every node shares."""
    if gateway.rate_limit_redis:
        host, port = gateway.rate_limit_redis.rsplit(":", 1)
        return {"minute": gateway.rate_limit_per_minute, "redis_host": host, "redis_port": int(port)}
    return {"minute": math.ceil(gateway.rate_limit_per_minute / gateway.nodes)}


def render_kong_yml(settings, private_ips: list[str]) -> str:
    """The declarative config for the given backends' private addresses, in the order given."""
    gateway = settings.gateway
    return render_template(
        "kong/kong.yml.j2",
        gateway=gateway,
        active=gateway.active,
        passive=gateway.passive,
        upstream=UPSTREAM,
        service=SERVICE,
        route=ROUTE,
        health_route=HEALTH_ROUTE,
        rate_limit=rate_limit(gateway),
        targets=targets(private_ips, settings.app_port),
    )


def container_spec(settings) -> dict:
    """Everything `docker run` is told, as plain data: a change here means a new container."""
    gateway = settings.gateway
    # The admin API is full control over Kong (POST /config replaces everything): loopback only,
    # unless the operator named who may reach it (then the security group is the gate).
    admin_address = "0.0.0.0" if settings.kong_admin_cidr else "127.0.0.1"
    return {
        "name": CONTAINER,
        "image": gateway.image,
        "restart": "unless-stopped",
        # The host's network, no published ports: Docker publishes a port on 127.0.0.1 with a DNAT
        # rule that also takes packets a neighbour addresses to 127.0.0.1 (moby issue 45610). Kong
        # then listens on the host's own loopback, which the kernel keeps to the host (packets to
        # 127.0.0.0/8 arriving on a network interface are dropped as martians).
        "network": "host",
        "env": {
            "KONG_DATABASE": "off",
            "KONG_DECLARATIVE_CONFIG": f"{CONTAINER_DIR}/{CONFIG_NAME}",
            "KONG_PROXY_LISTEN": f"0.0.0.0:{gateway.proxy_port}",
            "KONG_ADMIN_LISTEN": f"{admin_address}:{gateway.admin_port}",
            "KONG_PROXY_ACCESS_LOG": "/dev/stdout",
            "KONG_ADMIN_ACCESS_LOG": "/dev/stdout",
            "KONG_PROXY_ERROR_LOG": "/dev/stderr",
            "KONG_ADMIN_ERROR_LOG": "/dev/stderr",
        },
        # The folder, not the file: a file bind-mount would keep pointing at the replaced inode.
        "mounts": [f"{HOST_DIR}:{CONTAINER_DIR}:ro"],
        # Kong logs every request to stdout, kept by Docker in a json-file without any limit:
        # at most 5 files of 10 MB (`docker logs kong` reads them). Part of the spec: adding the
        # limits recreated an existing container once.
        "log_driver": "json-file",
        "log_options": {"max-size": "10m", "max-file": "5"},
    }


def admin_port(spec: dict) -> int:
    """The port of the admin API on the node's loopback (Kong's own default when the spec names none)."""
    return int(spec["env"].get("KONG_ADMIN_LISTEN", "127.0.0.1:8001").rsplit(":", 1)[1])


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
