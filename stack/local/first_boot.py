"""What a local host does at its first boot, as an EC2 Ubuntu host's cloud-init and
unattended-upgrades do: the pure texts of its units and scripts (no I/O; image.py and
machines.py write them).

- **The login user** (`ssh_user`, default `ubuntu`) is created before sshd starts, with the
  project's key and passwordless sudo (cloud-init's `90-cloud-init-users` line), and root may not
  log in over SSH: every deploy and every test then takes the production path, `ubuntu` + `sudo`.
- **dpkg's lock held for a while after boot**, as unattended-upgrades holds it on a fresh Ubuntu
  host (its apt-daily run), so the first deploy meets a busy apt exactly as on AWS.
- **needrestart automatic**: Ubuntu's needrestart restarts services that use replaced libraries
  after any apt install run without a terminal; here it is set to do so always (`a`), the worst
  case for a deploy's own apt calls, which must keep it from restarting anything.

Per host, the provider writes only data into `/etc/sprint2-local/` (the user's name and key, how
long to hold the lock); the units in the image read it.
"""

from collections.abc import Mapping

from stack.errors import UserError

CONFIG_DIR = "/etc/sprint2-local"
DONE_DIR = "/var/lib/sprint2-local"
USER_UNIT = "sprint2-local-user.service"
APT_UNIT = "sprint2-local-apt-daily.service"
USER_SCRIPT = "/usr/local/lib/sprint2-local/create-login-user"
APT_SCRIPT = "/usr/local/lib/sprint2-local/hold-dpkg-lock"
# Long enough that a deploy started as soon as SSH answers meets it, short enough not to slow
# every fresh e2e converge by much (unattended-upgrades on a real first boot can take minutes).
APT_HOLD_S = 20
# Another hold for the hosts created next (0: none), only to measure a deploy without it (bench/converge.py).
APT_HOLD_SWITCH = "DEPLOY_LOCAL_APT_HOLD"
# dpkg's and apt's locks, taken the way apt takes them (fcntl, not flock: apt ignores flock).
APT_LOCKS = ("/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")


def user_unit() -> str:
    return f"""\
[Unit]
Description=Create the login user of this host (as cloud-init does on EC2)
Before=ssh.service
ConditionPathExists=!{DONE_DIR}/login-user-created

[Service]
Type=oneshot
ExecStart={USER_SCRIPT}
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""


def user_script() -> str:
    """Creates `<CONFIG_DIR>/login-user` with the key in `<CONFIG_DIR>/authorized_keys`."""
    return f"""\
#!/bin/sh
set -eu
user=$(cat {CONFIG_DIR}/login-user)
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo "$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
install -m 600 -o "$user" -g "$user" {CONFIG_DIR}/authorized_keys "$home/.ssh/authorized_keys"
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' "$user" > /etc/sudoers.d/90-cloud-init-users.tmp
chmod 440 /etc/sudoers.d/90-cloud-init-users.tmp
visudo -cq -f /etc/sudoers.d/90-cloud-init-users.tmp
mv /etc/sudoers.d/90-cloud-init-users.tmp /etc/sudoers.d/90-cloud-init-users
mkdir -p {DONE_DIR} && touch {DONE_DIR}/login-user-created
echo "sprint2-local: login user $user created (ssh key, passwordless sudo; root may not log in)"
"""


def sshd_config() -> str:
    """sshd drop-in: included before the main file's own settings, so it wins."""
    return (
        "# Written by the local provider: log in as the login user, then sudo (as on EC2).\n"
        "PermitRootLogin no\n"
        "PasswordAuthentication no\n"
    )


def apt_unit() -> str:
    return f"""\
[Unit]
Description=Hold dpkg's lock after the first boot (as unattended-upgrades does on Ubuntu)
After=network.target
ConditionPathExists=!{DONE_DIR}/apt-daily-done

[Service]
Type=exec
ExecStart=/usr/bin/python3 {APT_SCRIPT}
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""


def apt_script() -> str:
    return f"""\
import fcntl, os, time
seconds = int(open("{CONFIG_DIR}/apt-hold-seconds").read())
held = []
for path in {APT_LOCKS!r}:
    handle = open(path, "a")  # no truncation: the files stay as dpkg left them
    fcntl.lockf(handle, fcntl.LOCK_EX)
    held.append(handle)
print(f"sprint2-local: holding dpkg's lock for {{seconds}} s at {{time.time():.3f}}", flush=True)
time.sleep(seconds)
os.makedirs("{DONE_DIR}", exist_ok=True)
open("{DONE_DIR}/apt-daily-done", "w").close()
print(f"sprint2-local: released dpkg's lock at {{time.time():.3f}}", flush=True)
"""


def needrestart_config() -> str:
    return (
        "# Written by the local provider: restart services automatically, as Ubuntu's apt runs\n"
        "# without a terminal do.\n"
        "$nrconf{restart} = 'a';\n"
    )


def image_files() -> dict[str, tuple[str, int]]:
    """Image-wide files: path -> (text, mode)."""
    return {
        f"/etc/systemd/system/{USER_UNIT}": (user_unit(), 0o644),
        USER_SCRIPT: (user_script(), 0o755),
        f"/etc/systemd/system/{APT_UNIT}": (apt_unit(), 0o644),
        APT_SCRIPT: (apt_script(), 0o644),
        "/etc/ssh/sshd_config.d/50-sprint2-local.conf": (sshd_config(), 0o644),
        "/etc/needrestart/conf.d/50-sprint2-local.conf": (needrestart_config(), 0o644),
    }


IMAGE_UNITS = (USER_UNIT, APT_UNIT)


def apt_hold_seconds(environ: Mapping[str, str]) -> int:
    """How long new hosts hold dpkg's lock: APT_HOLD_S unless APT_HOLD_SWITCH says otherwise."""
    given = environ.get(APT_HOLD_SWITCH, "").strip()
    if not given:
        return APT_HOLD_S
    if not given.isdigit() or int(given) > 3600:
        raise UserError(f"DEPLOY_LOCAL_APT_HOLD={given!r}: expected whole seconds from 0 to 3600 (unset: {APT_HOLD_S})")
    return int(given)


def host_files(user: str, authorized_key: str, apt_hold_s: int = APT_HOLD_S) -> dict[str, tuple[str, int]]:
    """One host's first-boot data: path -> (text, mode)."""
    return {
        f"{CONFIG_DIR}/login-user": (f"{user}\n", 0o644),
        f"{CONFIG_DIR}/authorized_keys": (authorized_key.strip() + "\n", 0o600),
        f"{CONFIG_DIR}/apt-hold-seconds": (f"{apt_hold_s}\n", 0o644),
    }
