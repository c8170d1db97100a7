"""Folders and files that must exist with an owner and a mode, all of an operation's read at once.

pyinfra's `files.directory` and `files.file` read one path each, and each is an operation of its
own: a deploy that changes nothing pays a command and a step for every path on every host (five on
a backend; issue 12). `paths_exist` reads its paths with one `stat` and changes only what differs,
with the commands `files.directory` and `files.file` would run.
"""

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation

KINDS = {"directory": ("directory",), "file": ("regular file", "regular empty file")}


def wanted(path: str, kind: str, user: str, group: str, mode: str) -> dict:
    """One path as `paths_exist` takes it: kind "directory" or "file", mode like "755"."""
    if kind not in KINDS:
        raise ValueError(f"{path}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return {"path": path, "kind": kind, "user": user, "group": group, "mode": mode}


def stat_command(paths: list[str]) -> str:
    """One `stat` of `paths`, a line each for those that exist, read by `stat_states`."""
    return f"stat -c '%U %G %a %F|%n' {' '.join(shlex.quote(path) for path in paths)} 2>/dev/null"


def stat_states(lines: list[str]) -> dict[str, dict]:
    """{path: {"type": stat's file type, "user", "group", "mode" (e.g. 755)}} from `stat_command`'s lines."""
    states = {}
    for line in lines:
        head, _, path = line.partition("|")
        words = head.split(" ", 3)
        if path and len(words) == 4:
            user, group, mode, kind = words
            states[path] = {"type": kind, "user": user, "group": group, "mode": int(mode)}
    return states


class PathStates(FactBase):
    """{path: {"type": stat's file type, "user", "group", "mode" (e.g. 755)}} for those of `paths`
    that exist (a missing one is left out)."""

    def command(self, paths):
        return f"{stat_command(paths)}; true"

    def process(self, output):
        return stat_states(output)

    @staticmethod
    def default():
        return {}


@operation()
def paths_exist(paths: list[dict]):
    """Create each of `paths` (see `wanted`) that is missing, then give each its owner and mode."""
    states = host.get_fact(PathStates, paths=[item["path"] for item in paths]) or {}
    commands = []
    for item in paths:
        path, current = shlex.quote(item["path"]), states.get(item["path"])
        if current is not None and current["type"] not in KINDS[item["kind"]]:
            # What files.directory and files.file refuse too: never replace what is there.
            problem = f"{item['path']} exists but is a {current['type']}, not a {item['kind']}"
            commands.append(f"echo {shlex.quote(problem)} >&2; exit 1")
            continue
        if current is None:
            commands.append(f"mkdir -p {path}" if item["kind"] == "directory" else f"touch {path}")
        if current is None or (current["user"], current["group"]) != (item["user"], item["group"]):
            commands.append(f"chown {item['user']}:{item['group']} {path}")
        if current is None or current["mode"] != int(item["mode"]):
            commands.append(f"chmod {item['mode']} {path}")
    if not commands:
        host.noop(f"{', '.join(item['path'] for item in paths)} in place")
    yield from commands
