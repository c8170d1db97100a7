"""--provider local: provision.py's apply and destroy for hosts booted on this machine.

Hosts are systemd-nspawn containers running full systemd (see machines.py), on one bridge per
project prefix (network.py), booted from a cached Debian image (image.py). The state records
each host like the AWS provider does, with the nspawn pid and paths under "local".
"""

import ipaddress
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stack.confirm import confirm
from stack.dump import check_backup_path, default_backup_path, pull_dump, restore_hint
from stack.errors import UserError
from stack.local import console_keys, first_boot, image, machines, network, rds, sysctls
from stack.local.plan import make_plan, network_setup, render_destroy_plan, render_plan
from stack.operate.commands import sudo_prefix
from stack.operate.managed_dump import backup_through_backend
from stack.options import Options
from stack.provider import Provider, check_recorded_project
from stack.secrets import load_secrets
from stack.settings import Settings, host_names
from stack.state import Host, State, known_hosts_file, load_state, private_dir, remove_state, save_state

# command -> Debian package that provides it
REQUIRED = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}


PAST = {"create": "created", "start": "started", "restart": "restarted"}


# What `plan` runs: it reads addresses and links and asks running hosts over SSH, all without root.
PLAN_REQUIRES = ("ip", "ssh")


def check_requirements(root: bool = True) -> None:
    """Root and every tool, or (root=False, for a plan) only the tools the plan runs."""
    if root and os.geteuid() != 0:
        raise UserError(
            "the local provider boots systemd-nspawn hosts and needs root: run it as root (sudo); "
            "python provision.py --provider local plan runs without"
        )
    needed = REQUIRED if root else {command: REQUIRED[command] for command in PLAN_REQUIRES}
    missing = sorted({package for command, package in needed.items() if not shutil.which(command)})
    if missing:
        raise UserError(f"the local provider needs {', '.join(missing)}: apt-get install {' '.join(missing)}")


def ssh_key() -> Path:
    """The project's SSH key for local hosts, generated on first use."""
    key = private_dir("ssh") / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sprint2-stack", "-f", str(key)], check=True
        )
    return key


class LocalProvider(Provider):
    name = "local"

    def apply(self, settings: Settings, options: Options) -> int:
        return apply(settings, options)

    def destroy(self, settings: Settings, options: Options) -> int:
        return destroy(settings, options)

    def backup(self, settings: Settings, path: str | None) -> int:
        return backup(settings, path)


def _current_state(settings: Settings) -> State:
    state = load_state()
    if state is None:
        return State("local", settings.project_prefix)
    check_recorded_project(state, settings)
    recorded_subnet = (state.local or {}).get("subnet")
    if state.hosts and recorded_subnet and recorded_subnet != settings.local_subnet:
        raise UserError(
            f"local_subnet changed from {recorded_subnet} to {settings.local_subnet} while hosts "
            f"exist: run python provision.py --provider local destroy first"
        )
    recorded_distro = (state.local or {}).get("distro")
    if state.hosts and recorded_distro and recorded_distro != settings.local_distro:
        raise UserError(
            f"local_distro changed from {recorded_distro} to {settings.local_distro} while hosts "
            f"exist: run python provision.py --provider local destroy first"
        )
    state.prefix = settings.project_prefix
    return state


def _machine(host: Host) -> dict:
    """The local provider's part of a host record: pid, dir, root, and "incomplete" while it is made."""
    return host.extra.setdefault("local", {})


def _key_of(host: Host) -> str:
    assert host.ssh_key, "every local host records the project key it was made with"
    return host.ssh_key


def _running(state: State) -> set[str]:
    return {name for name, host in state.hosts.items() if machines.is_running(name, _machine(host).get("pid"))}


def _silent(state: State, running: set[str], notes: list[str]) -> set[str]:
    """The running hosts that do not answer SSH (asked all at once: a silent one costs its timeout).
    A user who may not read the project key (a plan without root) cannot ask: a note says so."""
    if not running:
        return set()
    keys = {_key_of(state.hosts[name]) for name in running}
    unreadable = sorted(key for key in keys if not os.access(key, os.R_OK))
    if unreadable:
        notes.append(
            f"not checked: whether the running hosts answer SSH ({', '.join(unreadable)} is not readable here)"
        )
        return set()
    known_hosts = str(known_hosts_file())

    def answers_ssh(name: str) -> bool:
        host = state.hosts[name]
        return machines.ssh_answers(host.private_ip, host.ssh_user, _key_of(host), known_hosts)

    names = sorted(running)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        answers = dict(zip(names, pool.map(answers_ssh, names), strict=True))
    return {name for name, answers_ssh in answers.items() if not answers_ssh}


def _allow_enough_inotify_instances(hosts: int) -> None:
    """Every local host's systemd needs inotify instances, all counted against this machine's
    root: with Linux's default limit about 14 hosts fit, and the next one dies while booting."""
    current = machines.read_inotify_limit()
    wanted = machines.inotify_instances_wanted(current, hosts) if current is not None else None
    if wanted is None:
        return
    try:
        sysctls.change(sysctls.INOTIFY_INSTANCES, str(wanted))
    except OSError as problem:
        print(
            f"warning: {hosts} hosts on this machine may exhaust fs.inotify.max_user_instances ({current}), "
            f"and it cannot be raised here ({problem.strerror}): sysctl -w fs.inotify.max_user_instances={wanted}",
            flush=True,
        )
        return
    print(
        f"raised fs.inotify.max_user_instances from {current} (Linux's default) to {wanted}: {hosts} hosts will "
        f"run on this machine and each systemd holds about 9 (put back after the last local host)",
        flush=True,
    )


def apply(settings: Settings, options: Options) -> int:
    check_requirements(root=not options.dry)
    if settings.ssh_user == "root":
        raise UserError(
            "ssh_user: root: local hosts log in as a normal user and use sudo, as the AWS hosts do: "
            "set ssh_user to another name (default ubuntu)"
        )
    apt_hold_s = first_boot.apt_hold_seconds(os.environ)
    state = _current_state(settings)
    subnet = settings.local_subnet
    bridge = network.bridge_name(settings.project_prefix)
    network.check_subnet_free(subnet, bridge)
    wanted = host_names(settings)
    if settings.db_service == "rds":
        wanted = rds.wanted_hosts(wanted, settings.project_prefix)
    recorded = state.hosts
    addresses = network.assign_addresses(subnet, wanted, {name: host.private_ip for name, host in recorded.items()})
    running = _running(state)
    notes: list[str] = []  # what this user could not check (a plan without root)
    steps = make_plan(wanted, addresses, recorded, running, _silent(state, running, notes))

    setup = []
    if not image.is_complete(image.image_path(settings.local_distro)):
        setup.append(f"build base image {image.image_path(settings.local_distro)} (once, about 75 s)")
    bridge_found = network.bridge_exists(bridge)
    nat_found = network.nat_found(bridge, subnet) if bridge_found else False
    missing, unknown = network_setup(bridge, network.gateway_address(subnet), subnet, bridge_found, nat_found)
    setup += missing
    print(render_plan(steps, setup, notes + unknown), flush=True)
    if options.dry:
        print("(dry run: nothing was changed)")
        return 0
    stand_in = rds.host_name(settings.project_prefix) if settings.db_service == "rds" else None
    if not setup and all(step.action == "keep" for step in steps) and (not stand_in or state.database):
        return 0

    doomed = [step.name for step in steps if step.action == "destroy"]
    if doomed and not confirm(f"destroy {', '.join(doomed)}", options.yes):
        print("Apply cancelled: nothing was changed.")
        return 1

    started = time.monotonic()
    base = image.ensure_image(settings.local_distro)
    key = ssh_key()
    network.ensure_network(bridge, subnet)
    state.local = {
        "bridge": bridge,
        "subnet": subnet,
        "gateway": network.gateway_address(subnet),
        "image": str(base),
        "distro": settings.local_distro,
    }
    save_state(state)

    if doomed:
        _destroy_hosts(state, doomed)

    booting = [step for step in steps if step.action in ("create", "start", "restart")]
    _allow_enough_inotify_instances(len(machines.running_hosts() | {step.name for step in booting}))
    nameservers = network.host_nameservers(Path("/etc/resolv.conf").read_text())
    booted = {}
    for step in booting:
        host_started = time.monotonic()
        machines.stop({step.name: None})  # a stray copy left by an interrupted run
        if step.action == "create":
            machines.remove(step.name)
        role, backend_key = wanted[step.name]
        # A host started again keeps the login user and the image it was made with (its own
        # layer sits on that image); a new one takes the settings'.
        before = state.hosts.get(step.name) if step.action != "create" else None
        login_user = before.ssh_user if before else settings.ssh_user
        host_image = Path(_machine(before).get("image") or base) if before else base
        # Recorded before anything exists, so an interrupted run leaves nothing unrecorded;
        # "incomplete" makes the next apply create it again and destroy remove it.
        record = state.hosts[step.name] = Host(
            role=role,
            key=backend_key,
            private_ip=step.address,
            public_ip=step.address,
            ssh_user=login_user,
            ssh_key=str(key),
            ssh_port=22,
            extra={
                "local": {
                    "pid": None,
                    "dir": str(machines.machine_dir(step.name)),
                    "root": str(machines.machine_dir(step.name) / "root"),
                    "image": str(host_image),
                    "incomplete": True,
                }
            },
        )
        save_state(state)
        root = machines.mount_root(step.name, host_image)
        if step.action == "create":
            machines.write_host_files(
                root,
                step.name,
                step.address,
                ipaddress.IPv4Network(subnet).prefixlen,
                network.gateway_address(subnet),
                nameservers,
                Path(f"{key}.pub").read_text(),
                settings.ssh_user,
                apt_hold_s,
            )
            console_keys.install(root)  # it prints its host keys to its console at first boot
        del _machine(record)["incomplete"]
        pid = _machine(record)["pid"] = machines.start(step.name, root, bridge, step.role)
        save_state(state)
        booted[step.name] = step.address
        print(
            f"{PAST[step.action]} {step.name} ({step.address}), pid {pid}, in {time.monotonic() - host_started:.1f} s",
            flush=True,
        )

    for step in booting:  # pinned from what each new host printed to its console, as on AWS
        if step.action == "create":
            keys = console_keys.keys_from_console(step.name, machines.machine_dir(step.name) / "console.log")
            _trust_host_keys(step.address, [key.line for key in keys])
    if booted and options.wait:
        pids = {name: _machine(state.hosts[name])["pid"] for name in booted}

        def restart(name: str) -> int:
            machines.stop({name: None})
            record = state.hosts[name]
            pid = _machine(record)["pid"] = machines.start(name, Path(_machine(record)["root"]), bridge, record.role)
            save_state(state)
            return pid

        users = {name: state.hosts[name].ssh_user for name in booted}
        machines.wait_for_ssh(booted, users, str(key), str(known_hosts_file()), pids, restart=restart)
    if stand_in and (stand_in in booted or not state.database):
        _configure_stand_in(state, stand_in, settings)
    elif not stand_in and state.database:
        state.database = None  # back to db_service host: the stand-in was destroyed above
        save_state(state)
    restarted = sum(s.action == "restart" for s in steps)
    print(
        f"Apply complete in {time.monotonic() - started:.0f} s: "
        f"{sum(s.action == 'create' for s in steps)} created, {sum(s.action == 'start' for s in steps)} started, "
        + (f"{restarted} restarted, " if restarted else "")
        + f"{len(doomed)} destroyed."
    )
    return 0


def _configure_stand_in(state: State, name: str, settings: Settings) -> None:
    """provision.py's own configuration of the RDS stand-in (never deploy.py's), then its record."""
    started = time.monotonic()
    password = load_secrets()["rds_master_password"]
    entry, changed = rds.configure(name, state.hosts[name], settings.local_subnet, settings.project_prefix, password)
    state.database = entry
    save_state(state)
    how = "configured" if changed else "checked"
    print(
        f"{how} {name} as the local stand-in for RDS: PostgreSQL on {entry['address']}:{entry['port']}, TLS only "
        f"(CA {private_dir(rds.CA_FOLDER) / 'ca.pem'}), master user {entry['master_user']}, "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )


def _trust_host_keys(address: str, public_keys: list[str]) -> None:
    """Record the new host's keys, replacing a re-created host's old ones (no trust-on-first-use)."""
    private_dir("ssh")
    path = known_hosts_file()
    text = path.read_text() if path.exists() else ""
    path.write_text(machines.replace_known_hosts(text, address, machines.known_hosts_lines(address, public_keys)))
    os.chmod(path, 0o600)


def _forget_host_keys(address: str) -> None:
    path = known_hosts_file()
    if path.exists():
        path.write_text(machines.replace_known_hosts(path.read_text(), address, []))


def _still_here() -> list[str]:
    """What may still need this machine's forwarding and inotify instances: the local hosts of
    every project (running, or their folders) and every bridge (each project's is up before it
    sets anything, see network.ensure_network; Docker's and libvirt's need forwarding too)."""
    folders = sorted(path.name for path in machines.MACHINES.iterdir()) if machines.MACHINES.is_dir() else []
    return sorted(machines.running_hosts() | set(folders)) + network.bridges()


def _destroy_hosts(state: State, names: list[str]) -> None:
    hosts = {name: state.hosts[name] for name in names}
    print(
        f"shutting down {', '.join(hosts)} (systemd stops every service; killed after {machines.STOP_TIMEOUT_S} s)...",
        flush=True,
    )
    started = time.monotonic()
    machines.stop({name: _machine(host).get("pid") for name, host in hosts.items()})
    print(f"  shut down in {time.monotonic() - started:.1f} s", flush=True)
    for name, host in hosts.items():
        started = time.monotonic()
        machines.remove(name)
        _forget_host_keys(host.private_ip)
        del state.hosts[name]
        if host.role == rds.ROLE:
            state.database = None
        save_state(state)
        print(
            f"destroyed {name} ({host.private_ip}): its files removed in {time.monotonic() - started:.1f} s", flush=True
        )


def _backup(
    state: State, settings: Settings, path: str, if_failed: str = "nothing was destroyed", label: str = "--backup"
) -> None:
    """pg_dump (custom format) of the application database to `path` (db_service rds: through the
    setup backend, as the app role over TLS)."""
    if settings.db_service == "rds":
        return backup_through_backend(state, settings, path, lambda line: print(line, flush=True), if_failed, label)
    db = [(name, host) for name, host in state.hosts.items() if host.role == "db"]
    if not db:
        raise UserError(f"{label}: no database host is recorded: run python provision.py --provider local first")
    name, host = db[0]
    target = check_backup_path(path, label)
    command = [
        "ssh",
        "-i",
        _key_of(host),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_file()}",
        "-o",
        "ConnectTimeout=10",
        f"{host.ssh_user}@{host.private_ip}",
        sudo_prefix(host.ssh_user) + f"runuser -u postgres -- pg_dump --format=custom {settings.db_name}",
    ]
    pull_dump(command, target, name, settings.db_name, lambda line: print(line, flush=True), if_failed, label)


def backup(settings: Settings, path: str | None) -> int:
    """`provision.py backup [PATH]`: a fresh pg_dump of the database host."""
    state = load_state()
    if not state or not state.hosts:
        raise UserError("backup: no database host is recorded: run python provision.py --provider local first")
    target = path or str(default_backup_path(settings.db_name))
    _backup(state, settings, target, if_failed="", label="backup")
    print(restore_hint(target))
    return 0


def destroy(settings: Settings, options: Options) -> int:
    check_requirements(root=not options.dry)
    state = load_state()
    if state is None:
        print("Nothing to destroy: no local hosts are recorded.")
        return 0
    local = state.local or {}
    names = sorted(state.hosts)
    unknown = [name for name in options.only if name not in state.hosts]
    if unknown:
        raise UserError(f"--only: {', '.join(unknown)} not recorded; recorded hosts: {', '.join(names) or 'none'}")
    targets = list(options.only) or names
    everything = len(targets) == len(names)
    bridge = local.get("bridge") if everything else None
    print(render_destroy_plan({name: state.hosts[name] for name in targets}, bridge), flush=True)
    if options.dry:
        print("(dry run: nothing was changed)")
        return 0
    if not confirm(f"destroy {len(targets)} local hosts", options.yes):
        print("Destroy cancelled: nothing was changed.")
        return 1
    if options.backup:
        _backup(state, settings, options.backup)
    _destroy_hosts(state, targets)
    if everything:
        if local.get("bridge"):
            network.remove_network(local["bridge"], local["subnet"])
        remove_state()
        restored = sysctls.restore_after_last_host(_still_here)
        if restored:
            print(restored, flush=True)
    print(f"Destroy complete: {len(targets)} destroyed.")
    return 0
