from stack.local import machines
from stack.local.machines import boot_command, known_hosts_lines, network_file, replace_known_hosts, resolv_conf


def test_boot_command():
    assert boot_command("des-db", "/m/des-db/root", "br-des", "db") == [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        "--directory=/m/des-db/root",
        "--machine=des-db",
        "--register=no",
        "--keep-unit",
        "--network-bridge=br-des",
        "--resolv-conf=off",
        "--link-journal=no",
        "--console=read-only",
    ]


def test_on_cgroup_v1_the_kong_host_gets_its_own_cgroups_and_the_keyring_calls():
    # Its own view, not this machine's whole tree: two Kong hosts would share their units' cgroups.
    assert boot_command("des-kong", "/r", "br-des", "kong", cgroup_v1=True)[-2:] == [
        "--bind=/run/sprint2-stack/cgroups/des-kong:/sys/fs/cgroup",
        "--system-call-filter=add_key keyctl request_key",
    ]
    assert boot_command("des-kong", "/r", "br-des", "kong", cgroup_v1=False)[-1] == "--console=read-only"
    assert boot_command("des-db", "/r", "br-des", "db", cgroup_v1=True)[-1] == "--console=read-only"


MOUNTS = """sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,relatime,size=4096k,nr_inodes=1024,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
cgroup /mnt/elsewhere/memory cgroup rw,relatime,memory 0 0
"""


def test_the_v1_hierarchies_are_the_cgroup_mounts_right_under_sys_fs_cgroup():
    assert [str(path) for path in machines.v1_hierarchies(MOUNTS)] == [
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/systemd",
    ]
    # nspawn makes the host's own cgroup2 view below the cgroup it starts in: the host's subtree.
    assert [str(path) for path in machines.unified_hierarchies(MOUNTS)] == ["/sys/fs/cgroup/unified"]


def test_the_host_boots_from_inside_its_subtree_of_every_hierarchy():
    hierarchies = machines.v1_hierarchies(MOUNTS)
    assert machines.joined("des-kong", hierarchies, ["python3", "supervise.py", "systemd-nspawn"]) == [
        "sh",
        "-c",
        "for procs in /sys/fs/cgroup/cpu,cpuacct/sprint2-des-kong/cgroup.procs "
        "/sys/fs/cgroup/memory/sprint2-des-kong/cgroup.procs /sys/fs/cgroup/systemd/sprint2-des-kong/cgroup.procs; "
        'do echo $$ > "$procs" || exit 1; done; exec "$@"',
        "sh",
        "python3",
        "supervise.py",
        "systemd-nspawn",
    ]


def test_boot_command_adds_the_flags_of_the_role(monkeypatch):
    monkeypatch.setitem(machines.ROLE_FLAGS, "kong", ("--capability=all",))
    assert boot_command("des-kong", "/r", "br-des", "kong")[-1] == "--capability=all"
    assert "--capability=all" not in boot_command("des-db", "/r", "br-des", "db")


def test_network_file():
    assert network_file("10.77.0.10", 24, "10.77.0.1", ["10.255.255.53"]) == (
        "[Match]\nName=host0\n\n[Network]\nAddress=10.77.0.10/24\nGateway=10.77.0.1\nDNS=10.255.255.53\n"
    )


def test_resolv_conf():
    assert resolv_conf(["10.0.0.2", "10.0.0.3"]) == "nameserver 10.0.0.2\nnameserver 10.0.0.3\n"


def test_known_hosts_lines_drop_the_comment():
    assert known_hosts_lines("10.77.0.10", ["ssh-ed25519 AAAAC3 root@builder"]) == ["10.77.0.10 ssh-ed25519 AAAAC3"]


def test_a_recreated_host_replaces_its_old_keys_only():
    text = "10.77.0.10 ssh-ed25519 OLD\n10.77.0.100 ssh-ed25519 OTHER\n[10.77.0.10]:22 ssh-rsa OLDRSA\n"
    assert replace_known_hosts(text, "10.77.0.10", ["10.77.0.10 ssh-ed25519 NEW"]) == (
        "10.77.0.100 ssh-ed25519 OTHER\n10.77.0.10 ssh-ed25519 NEW\n"
    )


def test_forgetting_the_last_host_leaves_an_empty_file():
    assert replace_known_hosts("10.77.0.10 ssh-ed25519 OLD\n", "10.77.0.10", []) == ""
