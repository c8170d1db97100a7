"""The rendered kong.yml against Kong 2.7's declarative schema, for every field it uses.

Kong cannot run here, so its schema is restated below from its Lua sources at 2.7.x
(kong/db/schema/entities/{upstreams,services,routes,targets}.lua, kong/db/schema/typedefs.lua,
kong/plugins/{rate-limiting,correlation-id,request-termination}/schema.lua) and
/work/shared/notes/kong.md.
Unknown fields are errors, as they are for Kong.
"""

import ipaddress
import re

import pytest
import yaml

from stack.settings import settings_from
from tasks.kong.render import render_kong_yml

BIG = 2**31
HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def integer(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        return None if low <= value <= high else f"expected {low}..{high}, got {value}"

    return check


def number(low=None, high=None, above=None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {value!r}"
        if above is not None and not value > above:
            return f"expected > {above}, got {value}"
        if low is not None and not low <= value <= high:
            return f"expected {low}..{high}, got {value}"
        return None

    return check


def one_of(*allowed):
    return lambda value: None if value in allowed else f"expected one of {allowed}, got {value!r}"


def boolean(value):
    return None if isinstance(value, bool) else f"expected a boolean, got {value!r}"


def string(pattern=None):
    def check(value):
        if not isinstance(value, str) or not value:
            return f"expected a non-empty string, got {value!r}"
        return None if pattern is None or pattern.match(value) else f"{value!r} does not match {pattern.pattern}"

    return check


def path(value):
    # typedefs.path: starts with "/", no "//", no whitespace.
    if not isinstance(value, str) or not value.startswith("/") or "//" in value or re.search(r"\s", value):
        return f"expected a path such as /x, got {value!r}"
    return None


def upstream_name(value):
    # A hostname, not an IP address, with no port.
    problem = string(HOSTNAME)(value)
    if problem:
        return problem
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    return "an upstream name may not be an IP address"


def target(value):
    # "IP:PORT"; Kong would default the port to 8000, so the port must be explicit here.
    if not isinstance(value, str) or ":" not in value:
        return f"expected IP:PORT, got {value!r}"
    host, port = value.rsplit(":", 1)
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return f"expected an IPv4 address before ':', got {host!r}"
    return integer(1, 65535)(int(port)) if port.isdigit() else f"expected a port after ':', got {port!r}"


def list_of(check, non_empty=False):
    def check_list(value):
        if not isinstance(value, list) or (non_empty and not value):
            return f"expected a{' non-empty' if non_empty else ''} list, got {value!r}"
        for index, item in enumerate(value):
            problem = check(item)
            if problem:
                return f"[{index}]: {problem}"
        return None

    return check_list


def record(fields, required=()):
    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping, got {value!r}"
        for name in value:
            if name not in fields:
                return f"{name}: unknown field"
        for name in required:
            if name not in value:
                return f"{name}: required field missing"
        for name, item in value.items():
            problem = fields[name](item)
            if problem:
                return f"{name}: {problem}"
        return None

    return check


HTTP_STATUSES = list_of(integer(100, 999))
SECONDS = number(0, 65535)
COUNTER = integer(0, BIG)
CHECK_TYPE = one_of("tcp", "http", "https")

ACTIVE = record(
    {
        "type": CHECK_TYPE,
        "timeout": SECONDS,
        "concurrency": integer(1, BIG),
        "http_path": path,
        "https_verify_certificate": boolean,
        "healthy": record({"interval": SECONDS, "successes": COUNTER, "http_statuses": HTTP_STATUSES}),
        "unhealthy": record(
            {
                "interval": SECONDS,
                "http_failures": COUNTER,
                "tcp_failures": COUNTER,
                "timeouts": COUNTER,
                "http_statuses": HTTP_STATUSES,
            }
        ),
    }
)
# Passive checks only count proxied traffic: no interval field exists (Kong rejects one).
PASSIVE = record(
    {
        "type": CHECK_TYPE,
        "healthy": record({"successes": COUNTER, "http_statuses": HTTP_STATUSES}),
        "unhealthy": record(
            {"http_failures": COUNTER, "tcp_failures": COUNTER, "timeouts": COUNTER, "http_statuses": HTTP_STATUSES}
        ),
    }
)
UPSTREAM = record(
    {
        "name": upstream_name,
        "algorithm": one_of("round-robin", "consistent-hashing", "least-connections"),
        "slots": integer(10, 2**16),
        "healthchecks": record({"active": ACTIVE, "passive": PASSIVE, "threshold": number(0, 100)}),
        "targets": list_of(record({"target": target, "weight": integer(0, 65535)}, required=("target",))),
    },
    required=("name",),
)
TIMEOUT = integer(0, BIG - 2)


def route(value):
    return record(
        {
            "name": string(),
            "paths": list_of(path, non_empty=True),
            "strip_path": boolean,
            "preserve_host": boolean,
            "protocols": list_of(one_of("http", "https")),
            "plugins": list_of(plugin),  # nested: the plugin applies to this route only
        }
    )(value)


ROUTE = route
SERVICE = record(
    {
        "name": string(),
        "protocol": one_of("grpc", "grpcs", "http", "https", "tcp", "tls", "udp"),
        "host": string(HOSTNAME),
        "port": integer(0, 65535),
        "retries": integer(0, 32767),
        "connect_timeout": TIMEOUT,
        "read_timeout": TIMEOUT,
        "write_timeout": TIMEOUT,
        "routes": list_of(ROUTE),
    },
    required=("host",),
)
PERIOD = number(above=0)
RATE_LIMITING = record(
    {
        "second": PERIOD,
        "minute": PERIOD,
        "hour": PERIOD,
        "day": PERIOD,
        "month": PERIOD,
        "year": PERIOD,
        "limit_by": one_of("consumer", "credential", "ip", "service", "header", "path"),
        # one_of("local", "cluster", "redis") in the schema, but DB-less Kong rejects "cluster".
        "policy": one_of("local", "redis"),
        "fault_tolerant": boolean,
        "hide_client_headers": boolean,
        "redis_host": lambda value: string(HOSTNAME)(value) and _ip(value),
        "redis_port": integer(0, 65535),
        "redis_password": lambda value: None if isinstance(value, str) else f"expected a string, got {value!r}",
        "redis_timeout": number(0, BIG),
        "redis_database": integer(0, BIG),
    }
)
REQUEST_TERMINATION = record(
    {
        "status_code": integer(100, 599),
        "message": string(),
        "content_type": string(),
        "body": string(),
        "echo": boolean,
        "echo_trigger": string(HEADER_NAME),
    }
)


def _ip(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"expected a host name or an IP address, got {value!r}"
    return None


CORRELATION_ID = record(
    {
        "header_name": string(HEADER_NAME),
        "generator": one_of("uuid", "uuid#counter", "tracker"),
        "echo_downstream": boolean,
    }
)


def plugin(value):
    configs = {
        "rate-limiting": RATE_LIMITING,
        "correlation-id": CORRELATION_ID,
        "request-termination": REQUEST_TERMINATION,
    }
    if not isinstance(value, dict) or value.get("name") not in configs:
        return f"expected one of the plugins {sorted(configs)}, got {value!r}"
    problem = record({"name": string(), "config": configs[value["name"]], "enabled": boolean})(value)
    if problem:
        return problem
    config = value.get("config", {})
    if value["name"] == "rate-limiting" and not any(
        period in config for period in ("second", "minute", "hour", "day", "month", "year")
    ):
        return "config: rate-limiting needs at least one period"
    if value["name"] == "rate-limiting" and config.get("policy") == "redis":
        missing = [field for field in ("redis_host", "redis_port") if field not in config]
        if missing:
            return f"config: policy redis needs {', '.join(missing)}"
    if value["name"] == "request-termination":
        if config.get("message") and (config.get("content_type") or config.get("body")):
            return "config: message cannot be used with content_type or body"
        if config.get("content_type") and not config.get("body"):
            return "config: content_type requires a body"
    return None


DECLARATIVE = record(
    {
        "_format_version": one_of("1.1", "2.1"),  # 2.7 rejects "3.0"
        "upstreams": list_of(UPSTREAM),
        "services": list_of(SERVICE),
        "plugins": list_of(plugin),
    },
    required=("_format_version",),
)


def problems(config) -> list[str]:
    """Schema errors plus what the notes say makes the checks silently do nothing."""
    found = [problem] if (problem := DECLARATIVE(config)) else []
    if found:
        return found
    upstream_names = {upstream["name"] for upstream in config.get("upstreams", [])}
    for service in config.get("services", []):
        if service["host"] not in upstream_names:
            found.append(f"service {service.get('name')}: host {service['host']!r} is not an upstream")
    for upstream in config.get("upstreams", []):
        active = upstream.get("healthchecks", {}).get("active", {})
        if not active.get("healthy", {}).get("interval", 0) > 0:
            found.append("active.healthy.interval must be > 0 or probing is off")
        if not active.get("unhealthy", {}).get("interval", 0) > 0:
            found.append("active.unhealthy.interval must be > 0 or an ejected target never comes back")
        if not active.get("unhealthy", {}).get("tcp_failures", 0) > 0:
            found.append("active.unhealthy.tcp_failures must be > 0 or a stopped backend is never ejected")
    return found


def rendered(overrides=None, ips=("10.0.1.11", "10.0.1.12")):
    return yaml.safe_load(render_kong_yml(settings_from(overrides or {}), list(ips)))


@pytest.mark.parametrize("ips", [["10.0.1.11"], ["10.0.1.11", "10.0.1.12"], [f"10.0.1.{n}" for n in range(11, 15)]])
def test_defaults_satisfy_the_schema(ips):
    assert problems(rendered(ips=ips)) == []


SMALLEST = {
    "app_port": 1024,
    "gateway": {
        "target_weight": 0,
        "retries": 0,
        "connect_timeout_ms": 1,
        "read_timeout_ms": 1,
        "write_timeout_ms": 1,
        "rate_limit_per_minute": 1,
        "algorithm": "least-connections",
        "route_paths": ["/a"],
        "active": {
            "interval": 1,
            "timeout": 1,
            "concurrency": 1,
            "healthy_successes": 1,
            "healthy_statuses": [100],
            "unhealthy_interval": 1,
            "unhealthy_http_failures": 1,
            "unhealthy_timeouts": 1,
            "unhealthy_tcp_failures": 1,
        },
        "passive": {
            "healthy_successes": 1,
            "unhealthy_http_failures": 1,
            "unhealthy_timeouts": 1,
            "unhealthy_tcp_failures": 1,
        },
    },
}
LARGEST = {
    "app_port": 65535,
    "gateway": {
        "target_weight": 65535,
        "retries": 32767,
        "connect_timeout_ms": 2147483646,
        "read_timeout_ms": 2147483646,
        "write_timeout_ms": 2147483646,
        "rate_limit_per_minute": 1000000,
        "algorithm": "consistent-hashing",
        "route_paths": ["/", "/despachos/reporte/"],
        "request_id_header": "X-Kong-Request-ID",
        "active": {
            "interval": 65535,
            "timeout": 65535,
            "concurrency": 2147483648,
            "healthy_successes": 255,
            "healthy_statuses": [599],
            "unhealthy_interval": 65535,
            "unhealthy_http_failures": 255,
            "unhealthy_timeouts": 255,
            "unhealthy_tcp_failures": 255,
        },
        "passive": {
            "healthy_successes": 255,
            "unhealthy_http_failures": 255,
            "unhealthy_timeouts": 255,
            "unhealthy_tcp_failures": 255,
        },
    },
}


@pytest.mark.parametrize("overrides", [SMALLEST, LARGEST], ids=["smallest settings", "largest settings"])
def test_every_value_the_settings_accept_satisfies_the_schema(overrides):
    assert problems(rendered(overrides)) == []


def test_the_file_uses_only_the_2_1_format_and_the_local_policy():
    config = rendered()
    assert config["_format_version"] == "2.1"
    assert _rate_limiting(config)["config"]["policy"] == "local"
    assert "interval" not in config["upstreams"][0]["healthchecks"]["passive"]["healthy"]
    assert "interval" not in config["upstreams"][0]["healthchecks"]["passive"]["unhealthy"]


def _rate_limiting(config):
    return config["services"][0]["routes"][0]["plugins"][0]


def _health_plugin(config):
    return config["services"][0]["routes"][1]["plugins"][0]


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_n_nodes_satisfy_the_schema_with_the_divided_limit(nodes):
    config = rendered({"gateway": {"nodes": nodes, "rate_limit_per_minute": 100}})
    assert problems(config) == []
    assert _rate_limiting(config)["config"] == {"minute": -(-100 // nodes), "limit_by": "ip", "policy": "local"}


@pytest.mark.parametrize("redis", ["10.0.1.50:6379", "redis.internal:6380"])
def test_a_shared_redis_satisfies_the_schema(redis):
    config = rendered({"gateway": {"nodes": 3, "rate_limit_redis": redis}})
    assert problems(config) == []
    assert _rate_limiting(config)["config"]["policy"] == "redis"


def _broken(change):
    config = rendered()
    change(config)
    return problems(config)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(_format_version="3.0"), "_format_version"),
        (lambda c: c["upstreams"][0]["healthchecks"]["passive"]["healthy"].update(interval=10), "interval: unknown"),
        (lambda c: _rate_limiting(c)["config"].update(policy="cluster"), "policy"),
        (lambda c: _rate_limiting(c)["config"].update(policy="redis"), "policy redis needs redis_host, redis_port"),
        (lambda c: _rate_limiting(c)["config"].update(redis_port=70000), "redis_port"),
        (lambda c: _health_plugin(c)["config"].update(body="ok"), "message cannot be used"),
        (lambda c: _health_plugin(c)["config"].update(status_code=600), "status_code"),
        (lambda c: c["services"][0]["routes"][1]["plugins"].append({"name": "circuit-breaker"}), "plugins"),
        (lambda c: c["upstreams"][0].update(algorithm="roundrobin"), "algorithm"),
        (lambda c: c["upstreams"][0]["healthchecks"]["active"].update(concurrency=0), "concurrency"),
        (
            lambda c: c["upstreams"][0]["healthchecks"]["active"]["healthy"].update(http_statuses=[1000]),
            "http_statuses",
        ),
        (lambda c: c["upstreams"][0]["targets"][0].update(target="10.0.1.11"), "target"),
        (lambda c: c["upstreams"][0]["targets"][0].update(weight=70000), "weight"),
        (lambda c: c["services"][0].update(retries=40000), "retries"),
        (lambda c: c["services"][0]["routes"][0].update(strip_path="no"), "strip_path"),
        (lambda c: c["services"][0]["routes"][0].update(paths=["despachos"]), "paths"),
        (lambda c: c["plugins"][0]["config"].update(generator="random"), "generator"),
        (lambda c: c["plugins"].append({"name": "circuit-breaker"}), "plugins"),
        (lambda c: c["upstreams"][0]["healthchecks"]["active"]["unhealthy"].update(interval=0), "never comes back"),
        (lambda c: c["upstreams"][0]["healthchecks"]["active"]["unhealthy"].update(tcp_failures=0), "stopped backend"),
        (lambda c: c["services"][0].update(host="elsewhere"), "not an upstream"),
    ],
)
def test_the_schema_check_catches_what_kong_would_reject(change, message):
    found = _broken(change)
    assert found and message in " ".join(found), found
