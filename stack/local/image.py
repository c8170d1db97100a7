"""The Debian base images local hosts boot from: built once per distribution with debootstrap,
then reused.

They live outside any state folder so that every project prefix and every test run shares them.
A build goes to a temporary folder renamed into place only when complete, so an interrupted
build is never mistaken for a good image. An image's folder is named by its suite and a digest
of everything that goes into it (packages, first-boot files): changing either builds a new
image beside the old one, which hosts still running may have mounted.
"""

import fcntl
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from stack.errors import UserError
from stack.local import first_boot

CACHE = Path("/var/cache/sprint2-stack")
# local_distro -> what it brackets the target (Ubuntu 24.04: PostgreSQL 16, Python 3.12, systemd 255) with.
SUITES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the hosts need before pyinfra can reach them: systemd as PID 1, sshd, python3 for facts,
# sudo for the login user; needrestart because Ubuntu Server has it.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "sudo",
    "ca-certificates",
    "needrestart",
)
COMPLETE_MARK = ".sprint2-image-complete"


def image_digest() -> str:
    content = repr((PACKAGES, sorted(first_boot.image_files().items()), first_boot.IMAGE_UNITS))
    return hashlib.sha256(content.encode()).hexdigest()[:10]


def image_path(suite: str = SUITE) -> Path:
    return CACHE / f"base-{suite}-{image_digest()}"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARK).exists()


def debootstrap_command(target: Path, suite: str = SUITE) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(target), MIRROR]


def ensure_image(suite: str = SUITE) -> Path:
    """The base image path, building it first when it is missing or incomplete (about 75 s).
    One build at a time on this machine: another project (or test session) starting meanwhile
    waits for it and then uses its image, instead of deleting its half-built folder."""
    final = image_path(suite)
    if is_complete(final):
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(final):
            return final
        return _build(final, suite)


def _build(final: Path, suite: str = SUITE) -> Path:
    building = final.with_name(f"{final.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    print(f"building the {SUITES[suite]} base image {final} with debootstrap (once; about 75 s)...", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        debootstrap_command(building, suite), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if result.returncode != 0:
        tail = result.stdout.strip().splitlines()[-3:]
        raise UserError(f"debootstrap failed (exit {result.returncode}): {' | '.join(tail)}")
    _prepare(building)
    (building / COMPLETE_MARK).write_text(f"{suite} {' '.join(PACKAGES)}\n")
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
    for path, (text, mode) in first_boot.image_files().items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)
    subprocess.run(
        ["chroot", str(root), "systemctl", "enable", *first_boot.IMAGE_UNITS],
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
