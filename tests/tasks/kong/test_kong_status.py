"""Kong's view of the backends as text (status prints it; tests/stack/operate covers the rest)."""

from tasks.kong.status import format_status

HEALTH = {
    "data": [
        {"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHY"},
        {"target": "10.0.1.12:8080", "weight": 100, "health": "UNHEALTHY"},
    ],
    "next": None,
}
SERVICES = {
    "data": [
        {
            "name": "backend-service",
            "protocol": "http",
            "host": "backend-cluster",
            "retries": 5,
            "connect_timeout": 60000,
            "read_timeout": 60000,
            "write_timeout": 60000,
        }
    ]
}
PLUGINS = {"data": [{"name": "rate-limiting", "enabled": True}, {"name": "correlation-id", "enabled": True}]}


def test_report_lists_each_target_the_service_and_the_plugins():
    lines, healthy = format_status("des-kong", HEALTH, SERVICES, PLUGINS)
    assert lines == [
        "Kong on des-kong: upstream backend-cluster",
        "  10.0.1.11:8080  HEALTHY  (weight 100)",
        "  10.0.1.12:8080  UNHEALTHY  (weight 100)",
        "service backend-service: http://backend-cluster, retries 5, timeouts connect/read/write 60000/60000/60000 ms",
        "plugins: correlation-id, rate-limiting",
    ]
    assert healthy is False


def test_all_healthy_and_disabled_plugins():
    health = {"data": [{"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHY"}]}
    lines, healthy = format_status("k", health, {"data": []}, {"data": [{"name": "rate-limiting", "enabled": False}]})
    assert healthy is True
    assert lines[-1] == "plugins: rate-limiting (disabled)"


def test_checks_off_or_no_targets_is_not_healthy():
    off = {"data": [{"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHCHECKS_OFF"}]}
    assert format_status("k", off, SERVICES, PLUGINS)[1] is False
    lines, healthy = format_status("k", {"data": []}, SERVICES, PLUGINS)
    assert healthy is False and lines[1] == "  (no targets: add backends and deploy)"


def test_the_rate_limit_each_node_allows_is_shown():
    plugins = {
        "data": [
            {"name": "rate-limiting", "enabled": True, "config": {"minute": 34, "policy": "local"}},
            {"name": "request-termination", "enabled": True, "config": {"status_code": 200}},
        ]
    }
    assert format_status("k", HEALTH, SERVICES, plugins)[0][-1] == (
        "plugins: rate-limiting (34/min per client IP, on this node), request-termination"
    )
    shared = {"data": [{"name": "rate-limiting", "config": {"minute": 100, "policy": "redis"}}]}
    assert format_status("k", HEALTH, SERVICES, shared)[0][-1] == (
        "plugins: rate-limiting (100/min per client IP, shared in redis)"
    )
