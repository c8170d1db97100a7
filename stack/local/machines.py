"""One local host: its root (an overlay on the base image), its own files, boot, stop, removal.

Each host's root is an overlayfs: the shared base image below, the host's own changes in
upper/. Creating a host costs a mount instead of copying half a gigabyte.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stack import ssh_wait
from stack.errors import UserError
from stack.local import first_boot

MACHINES = Path("/var/lib/sprint2-stack/machines")
SUPERVISOR = Path(__file__).with_name("supervise.py")
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# Linux's default per-user limit. Every host's systemd, journald, udevd, dbus and sshd hold about
# 8-9 inotify instances (measured, Debian 12 hosts), all counted against this machine's root:
# about 14 hosts exhaust it, and the next host's systemd dies at boot.
INOTIFY_DEFAULT = 128
INOTIFY_RAISED = 1024
INOTIFY_MANY_HOSTS = 8
STOP_TIMEOUT_S = 30

# Extra systemd-nspawn flags per role.
ROLE_FLAGS: dict[str, tuple[str, ...]] = {"db": (), "backend": (), "kong": ()}
# On a cgroup-v1 machine Docker inside a host needs a writable cgroup tree and the keyring
# syscalls (measured: stack/local/docker-in-nspawn.md). Each such host gets its OWN subtree of
# every hierarchy, seen as its /sys/fs/cgroup: with this machine's whole tree bound, two Kong
# hosts shared one ssh.service cgroup and one's sshd hung for 60 s (Debian 13 guests, whose
# journald could not even start).
DOCKER_ROLES = {"kong"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_VIEWS = Path("/run/sprint2-stack/cgroups")
KEYRING_CALLS = "--system-call-filter=add_key keyctl request_key"


def machine_dir(name: str) -> Path:
    return MACHINES / name


def boot_command(name: str, root: str, bridge: str, role: str, cgroup_v1: bool = False) -> list[str]:
    """The systemd-nspawn command that boots one host with systemd as PID 1 on the bridge.

    --register=no --keep-unit: this machine has no system bus for machined to register with.
    --resolv-conf=off: the host keeps the resolv.conf written for it.
    """
    docker = cgroup_v1 and role in DOCKER_ROLES
    return [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        f"--directory={root}",
        f"--machine={name}",
        "--register=no",
        "--keep-unit",
        f"--network-bridge={bridge}",
        "--resolv-conf=off",
        "--link-journal=no",
        "--console=read-only",
        *ROLE_FLAGS.get(role, ()),
        *((f"--bind={cgroup_view(name)}:{CGROUP_ROOT}", KEYRING_CALLS) if docker else ()),
    ]


def cgroup_view(name: str) -> Path:
    """The tmpfs that the host sees as /sys/fs/cgroup: its own subtree of each hierarchy."""
    return CGROUP_VIEWS / name


def cgroup_subtree(hierarchy: Path, name: str) -> Path:
    return hierarchy / f"sprint2-{name}"


def v1_hierarchies(mounts: str) -> list[Path]:
    """The cgroup-v1 hierarchies mounted right under /sys/fs/cgroup, from /proc/self/mounts text
    (cpu, memory..., systemd; not the cgroup2 `unified` one)."""
    return _cgroup_mounts(mounts, "cgroup")


def unified_hierarchies(mounts: str) -> list[Path]:
    """The cgroup2 hierarchy a hybrid machine mounts at /sys/fs/cgroup/unified ([] if none). nspawn
    gives the host its own view of it, but below the cgroup it starts in: that must be the host's too."""
    return _cgroup_mounts(mounts, "cgroup2")


def _cgroup_mounts(mounts: str, kind: str) -> list[Path]:
    found = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == kind and Path(fields[1]).parent == CGROUP_ROOT:
            found.append(Path(fields[1]))
    return found


def joined(name: str, hierarchies: list[Path], argv: list[str]) -> list[str]:
    """`argv` started from inside the host's subtree of every hierarchy, so that the host's systemd
    (and its Docker) create their cgroups there and nowhere else."""
    procs = " ".join(shlex.quote(str(cgroup_subtree(hierarchy, name) / "cgroup.procs")) for hierarchy in hierarchies)
    return ["sh", "-c", f'for procs in {procs}; do echo $$ > "$procs" || exit 1; done; exec "$@"', "sh", *argv]


def supervised(argv: list[str]) -> list[str]:
    """`argv` (the nspawn command) run under supervise.py, which boots the host again after a
    reboot from inside."""
    return [sys.executable, str(SUPERVISOR), *argv]


def inotify_instances_wanted(current: int, hosts: int) -> int | None:
    """The limit to set so `hosts` local hosts can boot, or None to leave it: only Linux's default
    is raised (a value someone chose is theirs), and only when that many hosts need it."""
    if current <= INOTIFY_DEFAULT and hosts >= INOTIFY_MANY_HOSTS:
        return INOTIFY_RAISED
    return None


def has_cgroup_v1() -> bool:
    """True when /sys/fs/cgroup is the v1 layout (a tmpfs of controllers), not the unified cgroup2."""
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def network_file(address: str, prefixlen: int, gateway: str, nameservers: list[str]) -> str:
    """systemd-networkd unit for host0; named 10-... so it wins over the packaged 80-container-host0."""
    lines = ["[Match]", "Name=host0", "", "[Network]", f"Address={address}/{prefixlen}", f"Gateway={gateway}"]
    lines += [f"DNS={server}" for server in nameservers]
    return "\n".join(lines) + "\n"


def resolv_conf(nameservers: list[str]) -> str:
    return "".join(f"nameserver {server}\n" for server in nameservers)


def known_hosts_lines(address: str, public_keys: list[str]) -> list[str]:
    """known_hosts lines for a host: its address, then key type and key (the comment dropped)."""
    return [f"{address} {' '.join(key.split()[:2])}" for key in public_keys]


def replace_known_hosts(text: str, address: str, lines: list[str]) -> str:
    """`text` without any line for `address`, plus `lines`: a re-created host has new keys."""
    marks = {address, f"[{address}]:22"}
    kept = [line for line in text.splitlines() if line and set(line.split()[0].split(",")).isdisjoint(marks)]
    return "\n".join(kept + lines) + ("\n" if kept or lines else "")


# --- effects ---------------------------------------------------------------------------------------


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def mount_root(name: str, image: Path) -> Path:
    """Mount the host's overlay root (idempotent) and return its path."""
    base = machine_dir(name)
    for part in ("upper", "work", "root"):
        (base / part).mkdir(parents=True, exist_ok=True)
    root = base / "root"
    if not is_mounted(root):
        options = f"lowerdir={image},upperdir={base / 'upper'},workdir={base / 'work'}"
        result = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if result.returncode != 0:
            raise UserError(f"cannot mount the root of {name}: {result.stdout.strip()}")
    return root


def write_host_files(
    root: Path,
    name: str,
    address: str,
    prefixlen: int,
    gateway: str,
    nameservers: list[str],
    authorized_key: str,
    login_user: str,
    apt_hold_s: int = first_boot.APT_HOLD_S,
) -> None:
    """Write the host's identity into its own layer. The login user is made at first boot from
    these files (first_boot.py), as cloud-init makes it on EC2; the host keys generated here are
    pinned from what the host prints on its console (console_keys.py), as on AWS."""
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
    network = root / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "10-host0.network").write_text(network_file(address, prefixlen, gateway, nameservers))
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text(resolv_conf(nameservers))
    _copy_certificates(root)
    for path, (text, mode) in first_boot.host_files(login_user, authorized_key, apt_hold_s).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)
    subprocess.run(["ssh-keygen", "-A", "-f", str(root)], check=True, stdout=subprocess.DEVNULL)


def _copy_certificates(root: Path) -> None:
    """Trust what this machine trusts (pip and git in the hosts go through the same TLS proxy).
    The local CA files are copied too, so an update-ca-certificates inside keeps them."""
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    local = Path("/usr/local/share/ca-certificates")
    if local.is_dir():
        target = root / "usr/local/share/ca-certificates"
        target.mkdir(parents=True, exist_ok=True)
        for certificate in local.glob("*.crt"):
            shutil.copyfile(certificate, target / certificate.name)


def prepare_cgroups(name: str) -> list[Path]:
    """The host's subtree of every cgroup-v1 hierarchy, bound into its view, and of the unified one
    (idempotent: a host booted again reuses them); returns the hierarchies the host must join."""
    mounts = Path("/proc/self/mounts").read_text()
    hierarchies = v1_hierarchies(mounts)
    view = cgroup_view(name)
    view.mkdir(parents=True, exist_ok=True)
    if not is_mounted(view):  # a tmpfs: nspawn refuses to remount a plain folder read-only
        _mount(name, ["-t", "tmpfs", "-o", "mode=755", "tmpfs", str(view)])
    for hierarchy in hierarchies:
        subtree = cgroup_subtree(hierarchy, name)
        subtree.mkdir(exist_ok=True)
        for limit in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset has none, and none may join it
            if (hierarchy / limit).exists() and not (subtree / limit).read_text().strip():
                (subtree / limit).write_text((hierarchy / limit).read_text())
        inside = view / hierarchy.name
        inside.mkdir(exist_ok=True)
        if not is_mounted(inside):
            _mount(name, ["--bind", str(subtree), str(inside)])
    for entry in CGROUP_ROOT.iterdir():  # cpu -> cpu,cpuacct where the machine has such links
        if entry.is_symlink() and not (view / entry.name).is_symlink():
            (view / entry.name).symlink_to(os.readlink(entry))
    unified = unified_hierarchies(mounts)
    for hierarchy in unified:
        cgroup_subtree(hierarchy, name).mkdir(exist_ok=True)
    return hierarchies + unified


def release_cgroups(name: str) -> None:
    """Undo prepare_cgroups once the host is stopped: unbind the view, then remove the host's
    subtrees leaf first (Docker's empty folders of a host that died with its containers too)."""
    view = cgroup_view(name)
    if view.is_dir():
        for inside in view.iterdir():
            if is_mounted(inside):
                subprocess.run(["umount", "--lazy", str(inside)], check=True)
        if is_mounted(view):
            subprocess.run(["umount", "--lazy", str(view)], check=True)
        shutil.rmtree(view, ignore_errors=True)
    mounts = Path("/proc/self/mounts").read_text()
    for hierarchy in v1_hierarchies(mounts) + unified_hierarchies(mounts):
        subtree = cgroup_subtree(hierarchy, name)
        if subtree.is_dir():
            # A cgroup folder is removed with rmdir, its files with it; a busy one stays.
            for folder, _, _ in os.walk(subtree, topdown=False):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass


def _mount(name: str, arguments: list[str]) -> None:
    result = subprocess.run(["mount", *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise UserError(f"cannot mount the cgroups of {name} (mount {' '.join(arguments)}): {result.stdout.strip()}")


def start(name: str, root: Path, bridge: str, role: str) -> int:
    """Boot the host in the background under its supervisor, detached so it outlives provision.py;
    returns the supervisor's pid (SIGTERM to it powers the host off)."""
    cgroup_v1 = has_cgroup_v1()
    command = supervised(boot_command(name, str(root), bridge, role, cgroup_v1))
    if cgroup_v1 and role in DOCKER_ROLES:
        command = joined(name, prepare_cgroups(name), command)
    with open(machine_dir(name) / "console.log", "ab") as log:  # the supervisor keeps its own copy
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


def is_running(name: str, pid: int | None) -> bool:
    """True when `pid` is a live supervisor or systemd-nspawn of this very host (pids get reused;
    hosts booted before the supervisor existed recorded nspawn's pid)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    nspawn = command[:1] == [b"systemd-nspawn"]
    supervisor = len(command) > 1 and command[1].endswith(b"stack/local/supervise.py")
    return (nspawn or supervisor) and f"--machine={name}".encode() in command


def host_processes(name: str) -> list[int]:
    """The supervisor and systemd-nspawn running this host, found by name, supervisor first."""
    pids = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and is_running(name, int(entry.name))
    ]
    return sorted(pids, key=lambda pid: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"systemd-nspawn"))


def running_hosts() -> set[str]:
    """Names of every local host running on this machine, of any project."""
    names: set[str] = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if command[:1] == [b"systemd-nspawn"]:
            names.update(arg[len(b"--machine=") :].decode() for arg in command if arg.startswith(b"--machine="))
    return names


def find_pid(name: str) -> int | None:
    """The process running this host, found by name (e.g. left by a run whose state is lost)."""
    pids = host_processes(name)
    return pids[0] if pids else None


def container_inits(name: str) -> list[int]:
    """PID 1 (systemd) of every container running this host, by its hostname: also the orphans
    left when a systemd-nspawn was killed (its container then keeps running, address and all)."""
    own = os.readlink("/proc/self/ns/pid")
    inits = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            namespace = os.readlink(entry / "ns/pid")
            if (entry / "comm").read_text().strip() != "systemd" or namespace == own:
                continue
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            # the namespace's init is the one whose parent lives outside the namespace
            if _namespace_of(parent) == namespace:
                continue
            if (entry / "root/etc/hostname").read_text().strip() == name:
                inits.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return inits


def _namespace_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # e.g. this machine's PID 1 may not be readable
        return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def stop(hosts: dict[str, int | None], timeout: float = STOP_TIMEOUT_S) -> None:
    """Power the hosts off: SIGTERM makes nspawn shut systemd down cleanly; after `timeout`, SIGKILL
    nspawn and the container's own init (killing nspawn alone leaves the container running).
    A pid of None means: look the host up by name."""
    hosts = {name: pid if pid is not None else find_pid(name) for name, pid in hosts.items()}
    alive = {name: pid for name, pid in hosts.items() if pid is not None and is_running(name, pid)}
    for pid in alive.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {name: pid for name, pid in alive.items() if is_running(name, pid)}
    for name in alive:
        for pid in host_processes(name):  # the supervisor first, so it boots nothing again
            os.kill(pid, signal.SIGKILL)
    inits = [init for name in hosts for init in container_inits(name)]
    for init in inits:
        os.kill(init, signal.SIGKILL)
    for _ in range(100):
        if not any(is_running(name, pid) for name, pid in alive.items()) and not any(map(_alive, inits)):
            break
        time.sleep(0.1)


def remove(name: str) -> None:
    """Unmount and delete the host's files and cgroups (the host must be stopped)."""
    release_cgroups(name)
    root = machine_dir(name) / "root"
    if is_mounted(root) and subprocess.run(["umount", str(root)], stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["umount", "--lazy", str(root)], check=True)
    shutil.rmtree(machine_dir(name), ignore_errors=True)


def ssh_answers(address: str, user: str, key: str, known_hosts: str, timeout: int = 3) -> bool:
    """True when `user` logs in with the key and may use sudo without a password: the host is
    ready for a deploy (its login user is made at first boot, before sshd starts)."""
    command = [
        "ssh",
        "-i",
        key,
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={timeout}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "LogLevel=ERROR",
        f"{user}@{address}",
        "sudo -n true",
    ]
    return (
        subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# systemd's first line of each boot: the console log is appended to across boots.
BOOT = re.compile(r"^systemd \d+.* running in system mode")
# "Failed to <do something>: <the system's reason>".
FAILURE = re.compile(r"^Failed to .+: (\S.*)$")
# Printed by every boot on a cgroup-v1 machine, harmless.
HARMLESS = re.compile(r"^Failed to create symlink /sys/fs/cgroup/")


def console_cause(name: str) -> str:
    """Why the host's last boot stopped, from its console. systemd's last failure is a summary
    ("Failed to allocate manager object: Too many open files", then "Exiting PID 1..."); the
    first failure of that boot with the same reason is the cause ("Failed to create control group
    inotify object: Too many open files"). Without any failure: the last line."""
    try:
        text = (machine_dir(name) / "console.log").read_text(errors="replace")
    except OSError:
        return "no console log"
    lines = [ANSI.sub("", line).strip() for line in text.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line]
    starts = [index for index, line in enumerate(lines) if BOOT.match(line)]
    last_boot = lines[starts[-1] :] if starts else lines
    failures = [
        (line, match.group(1)) for line in last_boot if (match := FAILURE.match(line)) and not HARMLESS.match(line)
    ]
    if failures:
        reason = failures[-1][1]
        return next(line for line, why in failures if why == reason)
    return last_boot[-1] if last_boot else "empty console log"


def inotify_hint(cause: str) -> str:
    if "inotify" not in cause and "Too many open files" not in cause:
        return ""
    return (
        f" (this machine's fs.inotify.max_user_instances is {read_inotify_limit()}: raise it, e.g. "
        f"sysctl -w fs.inotify.max_user_instances={INOTIFY_RAISED}, or stop other hosts)"
    )


def read_inotify_limit() -> int | None:
    try:
        return int(INOTIFY_INSTANCES.read_text())
    except (OSError, ValueError):
        return None


def wait_for_ssh(
    addresses: dict[str, str],
    users: dict[str, str],
    key: str,
    known_hosts: str,
    pids: dict[str, int],
    timeout: float = 180,
    restart: Callable[[str], int] | None = None,
    retries: int = 2,
) -> None:
    """Block until every host answers SSH (a real login with the project's key).
    A host whose systemd-nspawn exits meanwhile is started again through `restart` (at most
    `retries` times: an nspawn booted beside the Docker-capable Kong host, which shares this
    machine's cgroup tree, was once seen to die at once), then fails with its console's last line."""
    restarts = {name: 0 for name in addresses}

    def alive(name: str) -> bool:
        if is_running(name, pids[name]):
            return True
        cause = console_cause(name)
        if restart and restarts[name] < retries:
            restarts[name] += 1
            print(f"  {name} stopped while booting ({cause}); starting it again", flush=True)
            pids[name] = restart(name)
            return False
        raise UserError(
            f"{name} stopped while booting: {cause}{inotify_hint(cause)} (see {machine_dir(name)}/console.log)"
        )

    ssh_wait.wait_for_ssh(
        addresses,
        lambda name: ssh_answers(addresses[name], users[name], key, known_hosts),
        lambda line: print(line, flush=True),
        timeout=timeout,
        poll=0.5,
        report_every=10,
        alive=alive,
        hint=lambda names: f"see {machine_dir(names[0])}/console.log",
    )
