"""The kernel settings the local provider changes on this machine, put back after the last host.

Hosts need `net.ipv4.ip_forward` = 1 (their NAT, network.py) and, from 8 hosts on, more
`fs.inotify.max_user_instances` than Linux's 128 (machines.py). The value found before the first
change is recorded in SAVED, beside the machines of every project (it outlives any one project
or run); when a destroy leaves no local host, machine folder or bridge on this machine, each is
put back, but only while it still holds the value we set (a later change is someone else's).
One lock serializes the changes and the restore of every project running provision.py here.
"""

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SAVED = Path("/var/lib/sprint2-stack/sysctls.json")
PROC_SYS = Path("/proc/sys")
IP_FORWARD = "net.ipv4.ip_forward"
INOTIFY_INSTANCES = "fs.inotify.max_user_instances"

# name -> {"before": the value found before our first change, "set": the value we set}
Saved = dict[str, dict[str, str]]


def proc_file(name: str, proc_sys: Path = PROC_SYS) -> Path:
    return proc_sys / name.replace(".", "/")


def with_change(saved: Saved, name: str, found: str, wanted: str) -> Saved:
    """`saved` once `name` goes from `found` to `wanted`: the first change's `found` is kept (a
    later apply finds our own value, or the one someone set meanwhile, which we overwrite)."""
    before = saved[name]["before"] if name in saved else found
    return {**saved, name: {"before": before, "set": wanted}}


def restorations(saved: Saved, current: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str | None]]:
    """(name -> value to put back, name -> value left as it is: changed since we set it)."""
    back = {name: values["before"] for name, values in saved.items() if current.get(name) == values["set"]}
    left = {name: current.get(name) for name in saved if name not in back}
    return back, left


def restore_line(back: dict[str, str], left: dict[str, str | None], saved: Saved) -> str:
    """The one line a destroy prints when it finds no local host left."""
    parts = [f"{name} to {back[name]}" for name in sorted(back)]
    kept = [f"{name} at {left[name]} (set to {saved[name]['set']} by us, changed since)" for name in sorted(left)]
    said = "no local host is left on this machine: "
    said += f"restored {', '.join(parts)}" if parts else "nothing to restore"
    return said + (f"; left {', '.join(kept)}" if kept else "")


def kept_line(saved: Saved, others: list[str]) -> str:
    """The line a destroy prints when other hosts still need what we changed."""
    values = ", ".join(f"{name}={saved[name]['set']} (was {saved[name]['before']})" for name in sorted(saved))
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return f"kept {values}: still on this machine: {shown}"


# --- effects ---------------------------------------------------------------------------------------


@contextmanager
def locked(saved_path: Path = SAVED) -> Iterator[None]:
    """Held by every read-modify-write of `saved_path` and of the values it records."""
    saved_path.parent.mkdir(parents=True, exist_ok=True)
    with open(saved_path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read(name: str, proc_sys: Path = PROC_SYS) -> str | None:
    try:
        return proc_file(name, proc_sys).read_text().strip()
    except OSError:
        return None


def load(saved_path: Path = SAVED) -> Saved:
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def store(saved: Saved, saved_path: Path = SAVED) -> None:
    """Write `saved` (under locked()); an empty one removes the file."""
    if not saved:
        saved_path.unlink(missing_ok=True)
        return
    temporary = saved_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    temporary.replace(saved_path)


def change(name: str, wanted: str, saved_path: Path = SAVED, proc_sys: Path = PROC_SYS) -> str | None:
    """Set `name` to `wanted`, first recording the value found; returns that value, or None when
    it already was `wanted` (nothing changed, nothing recorded). OSError when it cannot be set."""
    with locked(saved_path):
        found = read(name, proc_sys)
        if found == wanted:
            return None
        saved = load(saved_path)
        if found is not None:
            store(with_change(saved, name, found, wanted), saved_path)  # recorded before it changes
        proc_file(name, proc_sys).write_text(f"{wanted}\n")
        return found


def restore_after_last_host(
    still_here: Callable[[], list[str]], saved_path: Path = SAVED, proc_sys: Path = PROC_SYS
) -> str | None:
    """After a destroy: put back what we changed when `still_here()` (the local hosts, bridges
    and machine folders of every project) is empty; the line to print, None when nothing was
    recorded. Under the lock, so no project changes a value between the check and the write."""
    with locked(saved_path):
        saved = load(saved_path)
        if not saved:
            return None
        others = still_here()
        if others:
            return kept_line(saved, others)
        back, left = restorations(saved, {name: read(name, proc_sys) for name in saved})
        for name, value in back.items():
            proc_file(name, proc_sys).write_text(f"{value}\n")
        store({}, saved_path)
        return restore_line(back, left, saved)
