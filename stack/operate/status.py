"""python provision.py status: every host, backend, the database and Kong on one screen.

`report()` turns each host's probe answer (stack/operate/probe.py) into a JSON-able report with
its problems; `render()` prints it, marking each unhealthy line with `!`. Both are pure. What
could not be read (a host that does not answer, Kong's admin API without a container) is said
as such and counts as a problem: the exit status is 1 whenever anything is.
"""

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tasks.backend.layout import LAYOUT
from tasks.kong.render import CONFIG as KONG_CONFIG
from tasks.kong.render import CONTAINER as KONG_CONTAINER
from tasks.kong.status import format_status

DISK_LIMIT_PCT = 90
MEMORY_LIMIT_PCT = 95
CONNECTIONS_LIMIT_PCT = 90
# The backup timer runs daily (03:15 + up to 15 min, caught up at boot): two missed runs is stale.
BACKUP_MAX_AGE_S = 26 * 3600
HEALTHY_STATUSES = ("200", "302")


@dataclass(frozen=True)
class Answer:
    """One host's probe: `facts` when it answered, else `error` (why nothing could be read)."""

    name: str
    role: str
    address: str
    facts: dict
    error: str | None = None


def _pct(used: float, total: float) -> int | None:
    return round(100 * used / total) if total else None


def _int(facts: dict, key: str) -> int | None:
    value = facts.get(key, "")
    return int(value) if value.isdigit() else None


def _host(answer: Answer) -> dict:
    facts = answer.facts
    entry: dict[str, Any] = {
        "role": answer.role,
        "address": answer.address,
        "reachable": answer.error is None,
        "error": answer.error,
        "problems": [],
    }
    if answer.error:
        entry["problems"].append(f"does not answer: {answer.error}")
        return entry
    disk_used, disk_size = _int(facts, "disk_used_kb"), _int(facts, "disk_size_kb")
    mem_total, mem_free = _int(facts, "mem_total_kb"), _int(facts, "mem_available_kb")
    entry.update(
        uptime_s=_int(facts, "uptime_s"),
        disk_size_kb=disk_size,
        memory_total_kb=mem_total,
        disk_used_pct=_pct(disk_used or 0, disk_size or 0),
        memory_used_pct=_pct((mem_total or 0) - (mem_free or 0), mem_total or 0),
    )
    if (entry["disk_used_pct"] or 0) >= DISK_LIMIT_PCT:
        entry["problems"].append(f"disk {entry['disk_used_pct']}% used")
    if (entry["memory_used_pct"] or 0) >= MEMORY_LIMIT_PCT:
        entry["problems"].append(f"memory {entry['memory_used_pct']}% used")
    return entry


def _backend(facts: dict) -> dict:
    health = facts.get("health") or "not read"
    entry: dict[str, Any] = {
        "service": facts.get("service") or "unknown",
        "commit": facts.get("commit") or None,
        "lock": facts.get("lock") or None,
        "health": int(health) if health.isdigit() else health,
        "problems": [],
    }
    if entry["service"] != "active":
        entry["problems"].append(f"{LAYOUT.service} is {entry['service']}")
    if health not in HEALTHY_STATUSES:
        entry["problems"].append(f"health check answered {health}" if health.isdigit() else f"health check: {health}")
    if not entry["commit"]:
        entry["problems"].append("no release running (not deployed?)")
    return entry


def _database(facts: dict) -> dict:
    used, _, most = facts.get("connections", "").partition("/")
    entry: dict[str, Any] = {
        "up": used.isdigit(),
        "error": facts.get("db_error"),
        "connections": int(used) if used.isdigit() else None,
        "max_connections": int(most) if most.isdigit() else None,
        "last_backup": facts.get("backup"),
        "backup_age_s": None,
        "problems": [],
    }
    if not entry["up"]:
        entry["problems"].append(f"PostgreSQL does not answer: {entry['error'] or 'not read'}")
    elif (_pct(entry["connections"], entry["max_connections"]) or 0) >= CONNECTIONS_LIMIT_PCT:
        entry["problems"].append(f"{entry['connections']} of {entry['max_connections']} connections used")
    now, backup_time = _int(facts, "now"), _int(facts, "backup_time")
    if entry["last_backup"] and now is not None and backup_time is not None:
        entry["backup_age_s"] = now - backup_time
        if entry["backup_age_s"] > BACKUP_MAX_AGE_S:
            entry["problems"].append(f"last backup is {_duration(entry['backup_age_s'])} old")
    return entry


def _kong(facts: dict) -> dict:
    container = facts.get("container") or "unknown"
    entry: dict[str, Any] = {
        "container": "docker is not installed" if container == "no-docker" else container,
        "targets": None,
        "counters": None,
        "admin_error": None,
        # What the node serves: kong.yml is only replaced after Kong parsed it, then reloaded.
        "config_sha256": facts.get("config_sha256") or None,
        "problems": [],
    }
    if entry["container"] != "running":
        entry["problems"].append(f"container {entry['container']}")
    if not entry["config_sha256"]:
        entry["problems"].append(f"no {KONG_CONFIG}")
    answers = {}
    for key in ("health", "services", "plugins", "status"):
        try:
            answers[key] = json.loads(facts[f"kong_{key}"])
        except (KeyError, ValueError):
            entry["admin_error"] = entry["admin_error"] or facts.get(f"kong_{key}_error") or "no answer"
    if "health" in answers:
        entry["targets"] = [
            {"target": t.get("target"), "weight": t.get("weight"), "health": t.get("health")}
            for t in answers["health"].get("data", [])
        ]
        entry["admin"] = {key: answers.get(key, {}) for key in ("health", "services", "plugins")}
        bad = [t["target"] for t in entry["targets"] if t["health"] != "HEALTHY"]
        if bad or not entry["targets"]:
            entry["problems"].append(f"Kong sees {', '.join(bad) + ' not HEALTHY' if bad else 'no targets'}")
    if "status" in answers:
        entry["counters"] = {
            **answers["status"].get("server", {}),
            "database_reachable": answers["status"].get("database", {}).get("reachable"),
        }
    if entry["admin_error"]:
        entry["problems"].append(f"admin API not read: {entry['admin_error']}")
    return entry


ROLE_PARTS = {"backend": _backend, "db": _database, "kong": _kong}


def config_outliers(hashes: dict[str, str]) -> dict[str, str]:
    """node -> problem, for each Kong node whose kong.yml differs from the one most nodes serve
    (every node, when no config is served by more nodes than any other)."""
    counts = Counter(hashes.values())
    if len(counts) <= 1:
        return {}
    (most, first), (_, second) = counts.most_common(2)
    usual = most if first > second else None
    return {
        name: f"serves another kong.yml (sha256 {digest[:12]}) than "
        + (f"the other nodes ({usual[:12]})" if usual else "the other nodes (no two nodes agree)")
        for name, digest in sorted(hashes.items())
        if digest != usual
    }


def _answers_only(facts: dict) -> dict:
    """A host the deploy does not configure (the local RDS stand-in): that it answers is all."""
    return {"problems": []}


def report(answers: list[Answer]) -> dict:
    hosts = {}
    for answer in sorted(answers, key=lambda a: a.name):
        entry = _host(answer)
        if answer.error is None:
            part = ROLE_PARTS.get(answer.role, _answers_only)(answer.facts)
            entry["problems"] += part.pop("problems")
            entry[answer.role] = part
        hosts[answer.name] = entry
    hashes = {name: entry["kong"]["config_sha256"] for name, entry in hosts.items() if entry.get("kong")}
    for name, problem in config_outliers({name: digest for name, digest in hashes.items() if digest}).items():
        hosts[name]["kong"]["config_differs"] = True
        hosts[name]["problems"].append(problem)
    problems = [f"{name}: {problem}" for name, entry in hosts.items() for problem in entry["problems"]]
    return {"healthy": not problems, "problems": problems, "hosts": hosts}


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _size(kb: int | None) -> str:
    return "?" if kb is None else f"{kb / 1024**2:.1f}G"


def _line(problem: bool, text: str) -> str:
    return f"{'!' if problem else ' '} {text}"


def render(data: dict, health_path: str) -> str:
    hosts = data["hosts"]
    width = max((len(name) for name in hosts), default=4)
    out = ["HOSTS"]
    for name, entry in hosts.items():
        if not entry["reachable"]:
            out.append(_line(True, f"{name:<{width}}  {entry['address']:<15}  does not answer: {entry['error']}"))
            continue
        own = [p for p in entry["problems"] if p.startswith(("disk ", "memory "))]
        out.append(
            _line(
                bool(own),
                f"{name:<{width}}  {entry['address']:<15}  up {_duration(entry['uptime_s']):>6}"
                f"  disk {entry['disk_used_pct']}% of {_size(entry['disk_size_kb'])}"
                f"  memory {entry['memory_used_pct']}% of {_size(entry['memory_total_kb'])}",
            )
        )
    backends = {name: entry for name, entry in hosts.items() if entry["role"] == "backend"}
    out.append(f"BACKENDS  ({LAYOUT.service}.service, GET {health_path})")
    for name, entry in backends.items():
        part = entry.get("backend")
        if part is None:
            out.append(_line(True, f"{name:<{width}}  not read (host does not answer)"))
            continue
        bad = part["service"] != "active" or str(part["health"]) not in HEALTHY_STATUSES or not part["commit"]
        out.append(
            _line(
                bad,
                f"{name:<{width}}  {part['service']:<8}  commit {(part['commit'] or 'none')[:12]:<12}"
                f"  health {part['health']}" + (f"  lock {part['lock']}" if part.get("lock") else ""),
            )
        )
    for name, entry in hosts.items():
        if entry["role"] == "db":
            out += _render_database(name, entry.get("db"))
        elif entry["role"] == "kong":
            out += _render_kong(name, entry.get("kong"))
    unhealthy = [name for name, entry in hosts.items() if entry["problems"]]
    if unhealthy:
        out.append(f"UNHEALTHY: {', '.join(unhealthy)} (the lines marked !; --json lists each problem)")
    else:
        out.append("all healthy")
    return "\n".join(out)


def _render_database(name: str, part: dict | None) -> list[str]:
    out = [f"DATABASE  {name}"]
    if part is None:
        return out + [_line(True, "not read (host does not answer)")]
    if part["up"]:
        full = (_pct(part["connections"], part["max_connections"]) or 0) >= CONNECTIONS_LIMIT_PCT
        out.append(_line(full, f"PostgreSQL up, {part['connections']} of {part['max_connections']} connections used"))
    else:
        out.append(_line(True, f"PostgreSQL does not answer: {part['error'] or 'not read'}"))
    if part["last_backup"]:
        age = part["backup_age_s"]
        out.append(
            _line(
                age is not None and age > BACKUP_MAX_AGE_S, f"last backup {part['last_backup']}, {_duration(age)} old"
            )
        )
    else:
        out.append(_line(False, "no backup yet (the daily timer writes the first at 03:15)"))
    return out


def _render_kong(name: str, part: dict | None) -> list[str]:
    out = [f"KONG  {name}"]
    if part is None:
        return out + [_line(True, "not read (host does not answer)")]
    out.append(_line(part["container"] != "running", f"container {KONG_CONTAINER}: {part['container']}"))
    if part["admin_error"]:
        out.append(_line(True, f"admin API: could not read it ({part['admin_error']})"))
    if part["targets"] is not None:
        admin = part["admin"]
        lines = format_status(name, admin["health"], admin["services"], admin["plugins"])[0][1:]
        for index, text in enumerate(lines):
            target = part["targets"][index] if index < len(part["targets"]) else None
            marked = (target is not None and target["health"] != "HEALTHY") or (index == 0 and not part["targets"])
            out.append(_line(marked, text.strip() if target is None else f"target {text.strip()}"))
    if part["counters"]:
        counters = part["counters"]
        out.append(
            _line(
                False,
                "gateway /status: "
                + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counters.items() if value is not None),
            )
        )
    digest = part.get("config_sha256")
    out.append(
        _line(
            not digest or part.get("config_differs", False),
            f"config kong.yml sha256 {digest[:12]}"
            + (" (differs from the other nodes)" if part.get("config_differs") else "")
            if digest
            else f"config: no {KONG_CONFIG}",
        )
    )
    return out
