"""The Debian base image every local host boots from: built once with debootstrap, then reused.

It lives outside any state folder so that every project prefix and every test run shares it.
A build goes to a temporary folder renamed into place only when complete, so an interrupted
build is never mistaken for a good image.
"""

import fcntl
import shutil
import subprocess
import time
from pathlib import Path

from stack.errors import UserError

CACHE = Path("/var/cache/sprint2-stack")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the hosts need before pyinfra can reach them: systemd as PID 1, sshd, python3 for facts.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "sudo", "ca-certificates")
COMPLETE_MARK = ".sprint2-image-complete"


def image_path() -> Path:
    return CACHE / f"base-{SUITE}"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARK).exists()


def debootstrap_command(target: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target), MIRROR]


def ensure_image() -> Path:
    """The base image path, building it first when it is missing or incomplete (about 75 s).
    One build at a time on this machine: another project (or test session) starting meanwhile
    waits for it and then uses its image, instead of deleting its half-built folder."""
    final = image_path()
    if is_complete(final):
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(final):
            return final
        return _build(final)


def _build(final: Path) -> Path:
    building = CACHE / f"base-{SUITE}.building"
    shutil.rmtree(building, ignore_errors=True)
    print(f"building the base image {final} with debootstrap (once; about 75 s)...", flush=True)
    started = time.monotonic()
    result = subprocess.run(debootstrap_command(building), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = result.stdout.strip().splitlines()[-3:]
        raise UserError(f"debootstrap failed (exit {result.returncode}): {' | '.join(tail)}")
    _prepare(building)
    (building / COMPLETE_MARK).write_text(f"{SUITE} {' '.join(PACKAGES)}\n")
    if final.exists():
        shutil.rmtree(final)
    building.rename(final)
    print(f"base image ready in {time.monotonic() - started:.0f} s", flush=True)
    return final


def _prepare(root: Path) -> None:
    """Image-wide settings; per-host files (address, keys, names) go into each host's own layer."""
    # systemd-networkd gives host0 its static address (the host writes 10-host0.network).
    subprocess.run(
        ["chroot", str(root), "systemctl", "enable", "systemd-networkd"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Shared host keys would let one host impersonate another: each host gets its own.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # An empty machine-id makes systemd generate a distinct one on each host's first boot.
    (root / "etc/machine-id").write_text("")
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)
