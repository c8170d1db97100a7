"""Pin each instance's SSH host keys from its EC2 console output, before anything connects to it.

cloud-init prints the keys to the console at the instance's first boot (stack/host_keys.py); EC2
hands that output over the authenticated API, so no one on the network path can change it. The
keys are pinned under the instance id (stack/known_hosts.py) and stay pinned across stop/start
(new public IP: the line is renamed) while the console of a later boot no longer shows them.

Why the console rather than keys put in through user data: user data would carry the host's
PRIVATE key, readable by anyone with ec2:DescribeInstanceAttribute and, from the instance
metadata service, by every process on the host (the app user included), and kept on this machine
too. The console carries public keys only; the private ones never leave the host.
"""

import time
from datetime import UTC, datetime

from stack import known_hosts
from stack.aws.plan import Instance
from stack.errors import UserError
from stack.host_keys import ConsoleKeysError, address_name, console_host_keys
from stack.state import Host, State, known_hosts_file

# EC2 posts a Xen instance's console output some minutes after boot (Nitro ones sooner).
CONSOLE_TIMEOUT = 900
POLL_SECONDS = 10
# cloud-init prints the keys at the first boot only: an instance up longer than this whose console
# shows none will not print them any more (it was restarted, or its image does not print them).
FIRST_BOOT_WINDOW = 1800


def pin_names(host: Host) -> list[str]:
    """The known_hosts names of an AWS host: its instance id, then its current address."""
    names = [host.extra["instance_id"]]
    if host.public_ip:
        names.append(address_name(host.public_ip, host.ssh_port))
    return names


def follow_addresses(state: State) -> None:
    """Rename each pinned host's line to its recorded address (a stop/start gives a new public IP)."""
    for host in state.hosts.values():
        if host.extra.get("instance_id"):
            known_hosts.repoint(host.extra["instance_id"], pin_names(host))


def unpinned(state: State) -> list[str]:
    return sorted(
        name
        for name, host in state.hosts.items()
        if host.extra.get("instance_id") and not known_hosts.pinned(host.extra["instance_id"])
    )


def _age(instance: Instance | None) -> float:
    try:
        launched = datetime.fromisoformat(instance.launched) if instance else None
    except ValueError:
        launched = None
    return (datetime.now(UTC) - launched).total_seconds() if launched else 0.0


def pin_from_consoles(
    ec2,
    state: State,
    instances: dict[str, Instance],
    progress,
) -> None:
    """Read the console of every recorded host that has no pin yet until its keys appear, and pin them."""
    timeout, poll = CONSOLE_TIMEOUT, POLL_SECONDS
    waiting = unpinned(state)
    started = time.monotonic()
    while waiting:
        for name in list(waiting):
            host = state.hosts[name]
            instance_id = host.extra["instance_id"]
            output = ec2.get_console_output(InstanceId=instance_id).get("Output") or ""
            try:
                keys = console_host_keys(output)
            except ConsoleKeysError as error:
                raise UserError(
                    f"{name} ({instance_id}): its console output cannot be trusted ({error}); nothing was "
                    f"pinned: replace it with python provision.py destroy --only {name}, then python provision.py"
                ) from None
            if keys:
                known_hosts.pin(instance_id, pin_names(host), keys)
                progress(f"  {name}: host keys pinned from its console ({', '.join(k.described for k in keys)})")
                waiting.remove(name)
            elif _age(instances.get(name)) > FIRST_BOOT_WINDOW:
                raise UserError(
                    f"{name} ({instance_id}) has no pinned host key in {known_hosts_file()} and its console "
                    "shows none (cloud-init prints them at an instance's first boot only): read them in its "
                    f"system log (aws ec2 get-console-output --instance-id {instance_id} --output text), "
                    f"add them as '{instance_id},{host.public_ip} <type> <key>' lines, or replace the host "
                    f"(python provision.py destroy --only {name})"
                )
        if not waiting:
            return
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise UserError(
                f"the console output of {', '.join(waiting)} showed no SSH host keys within {timeout:.0f} s: "
                "re-run python provision.py to keep waiting (nothing connects to a host before its keys are pinned)"
            )
        progress(f"  waiting for the SSH host keys in the console output of {', '.join(waiting)} ({elapsed:.0f} s)")
        time.sleep(poll)
