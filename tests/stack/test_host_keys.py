"""stack/host_keys.py on the console text cloud-init really prints (tests/stack/fixtures: an Ubuntu
24.04 EC2 first boot, CRLF, kernel/systemd/getty output and escape sequences around the block, an
EC2 stamp inside the RSA key's line), and the known_hosts lines that pin what it finds."""

import subprocess
from pathlib import Path

import pytest

from stack.host_keys import (
    ConsoleKeysError,
    HostKey,
    address_name,
    console_host_keys,
    entry_lines,
    keys_for,
    mismatch,
    renamed,
    replace_entries,
)

CONSOLE = (Path(__file__).parent / "fixtures" / "console-noble-first-boot.txt").read_bytes().decode()
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMSFrAi7WodGpvx4XLh5c6PuJRaptHJM5psjLUXoiLy9"
# as ssh-keygen -l printed them for these keys (and the console repeats)
FINGERPRINTS = [
    "SHA256:nejaG+221XSmoHlmZ4IKaJskYMtG/LlSSKXHVTyIfWM (ECDSA)",
    "SHA256:YS9f8lSDoTCtYdIlXv7QmmGbwxHdXDplG5ZF73Ie6Hw (ED25519)",
    "SHA256:qk6Pp7tNOf8L7z2egm6MVJyz8F7JKTcU6CeFizfKiZg (RSA)",
]


def test_the_keys_of_a_real_first_boot_console_with_their_fingerprints():
    keys = console_host_keys(CONSOLE)
    assert [key.type for key in keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
    assert [key.described for key in keys] == FINGERPRINTS
    assert keys[1].line == ED25519
    assert len(keys[2].data) == 544  # the EC2 stamp inside the line is gone, the key whole


def test_fingerprints_are_ssh_keygens(tmp_path):
    for key in console_host_keys(CONSOLE):
        (tmp_path / "key.pub").write_text(key.line + "\n")
        printed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "key.pub")], capture_output=True, text=True)
        assert printed.stdout.split()[1] == key.fingerprint


@pytest.mark.parametrize("cut", ["-----BEGIN SSH HOST KEY KEYS-----", "ssh-ed25519 AAAAC3Nza", "ssh-rsa"])
def test_a_console_read_while_booting_has_no_keys_yet(cut):
    assert console_host_keys(CONSOLE[: CONSOLE.index(cut) + len(cut)]) is None
    assert console_host_keys(CONSOLE[: CONSOLE.index("-----BEGIN SSH HOST KEY FINGERPRINTS")]) is None
    assert console_host_keys("") is None


def test_lf_only_and_the_older_ec2_tag_read_the_same():
    older = CONSOLE.replace("\r\n", "\n").replace("<14>Dec  6 19:02:41 cloud-init: ", "ec2: ")
    assert [key.described for key in console_host_keys(older)] == FINGERPRINTS


def test_escape_sequences_and_interleaved_lines_inside_the_block():
    block = CONSOLE.replace(ED25519, "\x1b[0;32m" + ED25519[:30] + "\x1b[6n" + ED25519[30:] + "\x1b[0m")
    block = block.replace(
        "-----END SSH HOST KEY KEYS-----", "[    8.0] random: crng init done\r\n-----END SSH HOST KEY KEYS-----"
    )
    assert [key.described for key in console_host_keys(block)] == FINGERPRINTS


def test_a_key_cut_by_other_output_is_left_out_not_pinned_half():
    cut = CONSOLE.replace(ED25519, ED25519[:50] + "\r\n[    8.0] systemd[1]: Started ssh.service")
    assert [key.label for key in console_host_keys(cut)] == ["ECDSA", "RSA"]


def test_the_last_complete_block_counts():
    other = "-----BEGIN SSH HOST KEY KEYS-----\r\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBegbolJwkf1GRFhjRZxe2WW7dVsg+qy68eiAe1Dff4p\r\n-----END SSH HOST KEY KEYS-----\r\n"
    assert console_host_keys(other + CONSOLE)[1].line == ED25519


def test_a_key_that_is_not_its_printed_fingerprint_is_refused():
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIBegbolJwkf1GRFhjRZxe2WW7dVsg+qy68eiAe1Dff4p"
    with pytest.raises(
        ConsoleKeysError, match=r"^its ED25519 key has fingerprint SHA256:\S+ but the console printed SHA256:YS9f8"
    ):
        console_host_keys(CONSOLE.replace(ED25519.split()[1], other))


def test_a_block_without_a_whole_key_is_refused():
    with pytest.raises(ConsoleKeysError, match="holds no whole key"):
        console_host_keys(
            "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAnotakey\n-----END SSH HOST KEY KEYS-----\n"
        )


def test_known_hosts_lines_under_the_instance_id_and_address_follow_a_new_address():
    keys = console_host_keys(CONSOLE)
    lines = entry_lines(["i-0abc", address_name("198.51.100.4")], keys[1:2])
    assert lines == [f"i-0abc,198.51.100.4 {ED25519}"]
    text = replace_entries("10.0.0.9 ssh-ed25519 AAAA\ni-0abc,198.51.100.3 ssh-rsa OLD\n", "i-0abc", lines)
    assert text == f"10.0.0.9 ssh-ed25519 AAAA\ni-0abc,198.51.100.4 {ED25519}\n"
    assert keys_for(text, "i-0abc") == keys[1:2] and keys_for(text, "198.51.100.4") == keys[1:2]
    moved = renamed(text, "i-0abc", ["i-0abc", address_name("203.0.113.7", 2222)])
    assert moved == f"10.0.0.9 ssh-ed25519 AAAA\ni-0abc,[203.0.113.7]:2222 {ED25519}\n"
    assert keys_for(moved, "198.51.100.4") == []
    assert replace_entries(moved, "i-0abc", []) == "10.0.0.9 ssh-ed25519 AAAA\n"


def test_the_mismatch_line_names_the_host_and_both_fingerprints():
    pinned = [HostKey(*ED25519.split())]
    line = mismatch("des-db (i-0abc, 198.51.100.4)", "SHA256:zzz (ED25519)", pinned, "/p/known_hosts")
    assert line == (
        "des-db (i-0abc, 198.51.100.4) offered host key SHA256:zzz (ED25519), not the one pinned in "
        "/p/known_hosts (SHA256:YS9f8lSDoTCtYdIlXv7QmmGbwxHdXDplG5ZF73Ie6Hw (ED25519)): refused, nothing "
        "was sent; someone may be in between; if the host was replaced on purpose, re-create it with "
        "python provision.py (which pins the new host's keys)"
    )


def test_a_local_hosts_first_boot_console_as_nspawn_wrote_it():
    # Captured from a Debian 12 local host (stack/local/console_keys.py): systemd's status lines,
    # with their colour sequences, land between the fingerprint lines.
    text = (Path(__file__).parent / "fixtures" / "console-local-first-boot.txt").read_bytes().decode()
    assert "[\x1b[0;32m  OK  \x1b[0m] Started" in text
    assert [key.described for key in console_host_keys(text)] == [
        "SHA256:YaovJKyNB+7EI7T0WLoxFUdTocbIFNHv5UNBgUJg/Bw (ECDSA)",
        "SHA256:vvk/2WD4lKJ9hs0WtxS/ZGbiKhCrO90wByeW7Ad5bOc (ED25519)",
        "SHA256:70hBD2FXVyPtvgsaBUQ6To5wGOYs7JJu8rNd2X9QX04 (RSA)",
    ]
