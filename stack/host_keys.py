"""SSH host keys as cloud-init prints them to the console at an instance's first boot, and the
known_hosts lines that pin them (pure: no I/O; stack/known_hosts.py reads and writes the file).

cloud-init's cc_keys_to_console runs tools/write-ssh-key-fingerprints, which writes

    <14>Apr 22 19:51:35 cloud-init: #############################################################
    <14>Apr 22 19:51:35 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----
    <14>Apr 22 19:51:35 cloud-init: 256 SHA256:7tSY...+l+4 root@ip-10-0-132-36 (ED25519)
    <14>Apr 22 19:51:35 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----
    <14>Apr 22 19:51:35 cloud-init: #############################################################
    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3Nza... root@ip-10-0-132-36
    -----END SSH HOST KEY KEYS-----

(the fingerprints through `logger -s`, hence the syslog `<14>` and time; older releases tagged
them `ec2:`; the keys plainly) amid the kernel's, systemd's and getty's output: CRLF line ends,
terminal escape sequences, and EC2's own `[2026-04-22T19:51:37.224063]` stamps inside long lines.
The keys are what gets pinned; each is checked against the fingerprint printed for its type.
Only a complete block counts: a console read while the instance boots may end half-way.
"""

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

BEGIN_KEYS = "-----BEGIN SSH HOST KEY KEYS-----"
END_KEYS = "-----END SSH HOST KEY KEYS-----"
BEGIN_FINGERPRINTS = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
END_FINGERPRINTS = "-----END SSH HOST KEY FINGERPRINTS-----"

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), any other ESC pair, and C0 bytes but tab.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?|[\x00-\x08\x0b-\x1f\x7f]")
# EC2 stamps the console in chunks, also in the middle of a line; base64 has no "[".
_EC2_STAMP = re.compile(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\]")
_KEY = re.compile(r"(?:^|\s)((?:ssh|ecdsa-sha2|sk-ssh|sk-ecdsa-sha2)-[A-Za-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?=\s|$)")
# OpenSSH's REMOTE HOST IDENTIFICATION HAS CHANGED message names the key the host offered so:
_OFFERED = re.compile(r"fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)")
_FINGERPRINT = re.compile(r"\d+ (SHA256:[A-Za-z0-9+/]+)\s.*\(([A-Z0-9-]+)\)\s*$")
# ssh-keygen -l's name for each key type
LABELS = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ssh-dss": "DSA"}


class ConsoleKeysError(ValueError):
    """The console holds a keys block that cannot be trusted (the message says why)."""


@dataclass(frozen=True)
class HostKey:
    type: str  # ssh-ed25519, ecdsa-sha2-nistp256, ...
    data: str  # the base64 public key blob

    @property
    def line(self) -> str:
        return f"{self.type} {self.data}"

    @property
    def label(self) -> str:
        if self.type.startswith("ecdsa-sha2-"):
            return "ECDSA"
        if self.type.startswith("sk-ssh-ed25519"):
            return "ED25519-SK"
        if self.type.startswith("sk-ecdsa"):
            return "ECDSA-SK"
        return LABELS.get(self.type, self.type.upper())

    @property
    def fingerprint(self) -> str:
        """As ssh-keygen -l and ssh print it: SHA256 of the blob, base64 without padding."""
        digest = hashlib.sha256(base64.b64decode(self.data)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @property
    def described(self) -> str:
        return f"{self.fingerprint} ({self.label})"


def parse_key(key_type: str, data: str) -> HostKey | None:
    """A HostKey when `data` is a whole SSH public key blob of `key_type`, else None (a line cut
    by other console output fails here: the blob is a run of length-prefixed fields, ending exactly)."""
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            return None
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            return None
        fields.append(blob[offset : offset + length])
        offset += length
    if len(fields) < 2 or fields[0] != key_type.encode():
        return None
    return HostKey(key_type, data)


def console_lines(text: str) -> list[str]:
    """The console's lines without terminal control sequences or EC2's stamps."""
    text = _EC2_STAMP.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [_CONTROL.sub("", line) for line in text.split("\n")]


def _blocks(lines: list[str], begin: str, end: str) -> list[list[str]]:
    """The complete begin..end blocks (their inner lines); an unfinished last one is left out."""
    blocks: list[list[str]] = []
    inside: list[str] | None = None
    for line in lines:
        if begin in line:
            inside = []
        elif end in line and inside is not None:
            blocks.append(inside)
            inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def fingerprints(lines: list[str]) -> dict[str, str]:
    """label -> SHA256 fingerprint from the last complete fingerprints block ({} when none)."""
    blocks = _blocks(lines, BEGIN_FINGERPRINTS, END_FINGERPRINTS)
    found: dict[str, str] = {}
    for line in blocks[-1] if blocks else []:
        match = _FINGERPRINT.search(line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def console_host_keys(text: str) -> list[HostKey] | None:
    """The host keys of the last complete keys block of a console output, None when there is none
    (yet). Raises ConsoleKeysError when the block holds no whole key, or a key that is not the
    one whose fingerprint the console printed for its type."""
    lines = console_lines(text)
    blocks = _blocks(lines, BEGIN_KEYS, END_KEYS)
    if not blocks:
        return None
    keys: list[HostKey] = []
    for line in blocks[-1]:
        for match in _KEY.finditer(line):
            key = parse_key(match.group(1), match.group(2))
            if key and key not in keys:
                keys.append(key)
    if not keys:
        raise ConsoleKeysError("its host keys block holds no whole key")
    printed = fingerprints(lines)
    for key in keys:
        if key.label in printed and printed[key.label] != key.fingerprint:
            raise ConsoleKeysError(
                f"its {key.label} key has fingerprint {key.fingerprint} but the console printed "
                f"{printed[key.label]} for it"
            )
    return keys


# known_hosts ------------------------------------------------------------------------------------
def address_name(address: str, port: int = 22) -> str:
    """How OpenSSH and paramiko name a host in known_hosts: the address, [address]:port off 22."""
    return address if port == 22 else f"[{address}]:{port}"


def _names(line: str) -> list[str]:
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return []
    first = fields[1] if fields[0].startswith("@") and len(fields) > 1 else fields[0]
    return first.split(",")


def entry_lines(names: list[str], keys: list[HostKey]) -> list[str]:
    """One known_hosts line per key, under every name (e.g. the instance id and its address)."""
    return [f"{','.join(names)} {key.line}" for key in keys]


def replace_entries(text: str, name: str, lines: list[str]) -> str:
    """`text` without the lines that name `name`, then `lines` (none: the host is forgotten)."""
    kept = [line for line in text.splitlines() if line.strip() and name not in _names(line)]
    return "".join(f"{line}\n" for line in kept + lines)


def keys_for(text: str, name: str) -> list[HostKey]:
    """The keys pinned under `name` (revoked and CA lines are not pins)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("@") and name in _names(line):
            key = parse_key(fields[1], fields[2])
            if key:
                found.append(key)
    return found


def renamed(text: str, name: str, names: list[str]) -> str:
    """`text` with every line pinned under `name` now under exactly `names` (a new public IP)."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not fields[0].startswith("@") and name in _names(line):
            line = " ".join([",".join(names), *fields[1:3]])
        if line.strip():
            lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def offered_in(ssh_messages: str) -> str | None:
    """`SHA256:... (ED25519)`: the key a host offered, when OpenSSH refused it as changed."""
    found = _OFFERED.search(ssh_messages)
    return f"{found.group(2)} ({found.group(1)})" if found else None


def mismatch(host: str, offered: str, pinned: list[HostKey], known_hosts: str) -> str:
    """The one line for a host whose key is not its pinned one. `offered`: its fingerprint (type)."""
    expected = ", ".join(key.described for key in pinned) or "none"
    return (
        f"{host} offered host key {offered}, not the one pinned in {known_hosts} ({expected}): refused, "
        "nothing was sent; someone may be in between; if the host was replaced on purpose, re-create "
        "it with python provision.py (which pins the new host's keys)"
    )
