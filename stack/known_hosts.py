"""The project's known_hosts file (.deploy/ssh/known_hosts): pins written by provision.py only,
from what each host printed to its console (stack/host_keys.py), never from a first connection.

An AWS host is pinned under its instance id and its current address (`i-0abc,198.51.100.4 ...`):
OpenSSH looks it up by the id (HostKeyAlias), pyinfra's paramiko by the address, and a new public
IP after a stop/start only renames the line (`repoint`): the pin itself is never lost or re-read.
"""

import os

from stack.host_keys import HostKey, entry_lines, keys_for, renamed, replace_entries
from stack.state import known_hosts_file, private_dir


def _text() -> str:
    path = known_hosts_file()
    return path.read_text() if path.exists() else ""


def _write(text: str) -> None:
    private_dir("ssh")
    path = known_hosts_file()
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def pinned(name: str) -> list[HostKey]:
    return keys_for(_text(), name)


def pin(name: str, names: list[str], keys: list[HostKey]) -> None:
    """Pin `keys` under `names` (the first, `name`, is what identifies the host), replacing its old pins."""
    _write(replace_entries(_text(), name, entry_lines(names, keys)))


def repoint(name: str, names: list[str]) -> bool:
    """Give the pins of `name` exactly `names` (e.g. its new address); True when the file changed."""
    text = _text()
    moved = renamed(text, name, names)
    if moved != text:
        _write(moved)
    return moved != text


def forget(name: str) -> None:
    text = _text()
    if text:
        _write(replace_entries(text, name, []))
