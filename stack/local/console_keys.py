"""A local host prints its SSH host keys to its console at first boot, as cloud-init does on EC2,
and the local provider pins them from that console with the parser the AWS provider uses
(stack/host_keys.py): both providers pin keys the same way, from what the host itself printed.

The unit is written into each new host's own layer (not the shared base image, so the image and
its digest stay as they are): a oneshot that writes cloud-init's block to /dev/console, which
systemd-nspawn's --console=read-only copies to the machine folder's console.log. The fingerprint
lines carry the prefix cloud-init's write-ssh-key-fingerprints gets from `logger -s -t cloud-init`
(`<14>Mon DD HH:MM:SS cloud-init:`); the keys are written plainly, as there.
"""

import os
import time
from pathlib import Path

from stack.errors import UserError
from stack.host_keys import ConsoleKeysError, HostKey, console_host_keys

UNIT = "sprint2-local-keys-to-console.service"
SCRIPT = "/usr/local/lib/sprint2-local/keys-to-console"
DONE = "/var/lib/sprint2-local/host-keys-printed"
WAIT_S = 90  # a host boots in about a second; a loaded machine (e2e runs side by side) takes longer
POLL_S = 0.2


def unit_text() -> str:
    return f"""\
[Unit]
Description=Print the SSH host keys to the console at first boot (as cloud-init does on EC2)
# before the console's login prompt, so getty's terminal reset never lands inside the block
Before=console-getty.service
ConditionPathExists=!{DONE}

[Service]
Type=oneshot
ExecStart={SCRIPT}
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
"""


def script_text() -> str:
    rule = "#" * 61
    return f"""\
#!/bin/sh
# The host's SSH host keys on the console, in cloud-init's format (stack/local/console_keys.py).
set -u
# what `logger -s -p user.info -t cloud-init` prints (cloud-init's way), without needing /dev/log
say() {{ printf '<14>%s cloud-init: %s\n' "$(date '+%b %e %H:%M:%S')" "$1"; }}
say '{rule}'
say '-----BEGIN SSH HOST KEY FINGERPRINTS-----'
for key in /etc/ssh/ssh_host_*_key.pub; do say "$(ssh-keygen -l -f "$key")"; done
say '-----END SSH HOST KEY FINGERPRINTS-----'
say '{rule}'
echo '-----BEGIN SSH HOST KEY KEYS-----'
cat /etc/ssh/ssh_host_*_key.pub
echo '-----END SSH HOST KEY KEYS-----'
mkdir -p {os.path.dirname(DONE)} && touch {DONE}
"""


def install(root: Path) -> None:
    """Write the unit and its script into a new host's root, enabled for its first boot."""
    files = {
        f"etc/systemd/system/{UNIT}": (unit_text(), 0o644),
        SCRIPT.lstrip("/"): (script_text(), 0o755),
    }
    for path, (text, mode) in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / UNIT
    if not link.is_symlink():
        link.symlink_to(f"../{UNIT}")


def keys_from_console(name: str, console_log: Path, wait_s: float | None = None) -> list[HostKey]:
    """The host keys `name` printed to its console (console.log), waiting for them to appear."""
    deadline = time.monotonic() + (WAIT_S if wait_s is None else wait_s)
    while True:
        text = console_log.read_bytes().decode(errors="replace") if console_log.exists() else ""
        try:
            keys = console_host_keys(text)
        except ConsoleKeysError as error:
            raise UserError(
                f"{name}: its console output cannot be trusted ({error}); nothing was pinned: re-create it (python "
                f"provision.py --provider local destroy --only {name}, then python provision.py --provider local)"
            ) from None
        if keys:
            return keys
        if time.monotonic() > deadline:
            raise UserError(
                f"{name} printed no SSH host keys to its console within {WAIT_S if wait_s is None else wait_s:.0f} s "
                f"(see {console_log}); nothing connects to it before they are pinned: re-create it"
            )
        time.sleep(POLL_S)
