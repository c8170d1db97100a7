"""Kong's own view of the backends, as its admin API tells it (read by python provision.py status).

The admin API listens on the Kong host's 127.0.0.1 only; status reads these paths from the Kong
host itself through SSH (stack/operate/probe.py), so nothing is exposed.
"""

from tasks.shared import UPSTREAM

PATHS = {"health": f"/upstreams/{UPSTREAM}/health", "services": "/services", "plugins": "/plugins"}


def format_status(name: str, health: dict, services: dict, plugins: dict) -> tuple[list[str], bool]:
    """The report's lines and whether every target is HEALTHY (pure: tested without a host)."""
    targets = health.get("data", [])
    lines = [f"Kong on {name}: upstream {UPSTREAM}"]
    if not targets:
        lines.append("  (no targets: add backends and deploy)")
    width = max((len(target["target"]) for target in targets), default=0)
    for target in targets:
        lines.append(
            f"  {target['target']:<{width}}  {target.get('health', 'UNKNOWN')}  (weight {target.get('weight', '?')})"
        )
    for service in services.get("data", []):
        lines.append(
            f"service {service.get('name')}: {service.get('protocol')}://{service.get('host')}, "
            f"retries {service.get('retries')}, timeouts connect/read/write "
            f"{service.get('connect_timeout')}/{service.get('read_timeout')}/{service.get('write_timeout')} ms"
        )
    described = [
        f"{plugin.get('name')}{_limit(plugin)}{'' if plugin.get('enabled', True) else ' (disabled)'}"
        for plugin in plugins.get("data", [])
    ]
    lines.append(f"plugins: {', '.join(sorted(described)) or 'none'}")
    healthy = bool(targets) and all(target.get("health") == "HEALTHY" for target in targets)
    return lines, healthy


def _limit(plugin: dict) -> str:
    """What a rate-limiting plugin allows: with the local policy each node counts on its own (its
    share of gateway.rate_limit_per_minute), with redis the count is the service's."""
    config = plugin.get("config") or {}
    if plugin.get("name") != "rate-limiting" or not config.get("minute"):
        return ""
    where = "shared in redis" if config.get("policy") == "redis" else "on this node"
    return f" ({config['minute']}/min per client IP, {where})"
