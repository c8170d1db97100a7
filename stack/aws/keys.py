"""The SSH key pair: an existing one (key_name, e.g. Learner Lab's vockey) or a project key.

A project key is generated here with ssh-keygen (ed25519); the private part stays in
.deploy/ssh/ (mode 0600, git-ignored) and only the public part is imported into EC2.
"""

import os
import shutil
import subprocess
from pathlib import Path

from stack.aws.plan import key_pair_name
from stack.aws.tags import tag_specs
from stack.errors import UserError
from stack.settings import Settings
from stack.state import deploy_home, private_dir


def generated_key_path(settings: Settings) -> Path:
    return deploy_home() / "ssh" / f"{settings.project_prefix}_ed25519"


def private_key_path(settings: Settings) -> Path | None:
    """The private key the deploy logs in with, or None when the user must supply one."""
    if settings.key_name:
        return Path(settings.ssh_key_path).expanduser().resolve() if settings.ssh_key_path else None
    return generated_key_path(settings)


def key_pair_exists(ec2, name: str) -> bool:
    return bool(ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"])


def check_key(ec2, settings: Settings, exists: bool) -> list[str]:
    """Refuse a key that cannot work; return warnings for one that might not."""
    name = key_pair_name(settings)
    if settings.key_name:
        if not exists:
            raise UserError(
                f"key pair {name!r} not found in this region: check key_name (Learner Lab's vockey "
                f"exists only in us-east-1), or unset key_name to generate a project key"
            )
        path = private_key_path(settings)
        if path is None:
            return [
                f"ssh_key_path is unset: set it to the private key of {name} (Learner Lab: ~/.ssh/labsuser.pem, "
                f"chmod 600) so the deploy can log in"
            ]
        if not path.exists():
            return [f"ssh_key_path {path} does not exist: download the private key of {name} there (chmod 600)"]
        return []
    if exists and not generated_key_path(settings).exists():
        raise UserError(
            f"key pair {name!r} exists in AWS but its private key {generated_key_path(settings)} is "
            f"missing: restore it, or delete the key pair (aws ec2 delete-key-pair --key-name {name}) "
            f"if no host uses it, and re-run"
        )
    return []


def create_key_pair(ec2, settings: Settings) -> Path:
    """Generate the project key (unless the private part is already here) and import its public part."""
    path = generated_key_path(settings)
    if not path.exists():
        if not shutil.which("ssh-keygen"):
            raise UserError("ssh-keygen not found: install openssh-client, or set key_name to an existing key pair")
        private_dir("ssh")
        made = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key_pair_name(settings), "-f", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if made.returncode != 0:
            raise UserError(f"ssh-keygen could not write {path}: {made.stderr.strip() or made.returncode}")
    os.chmod(path, 0o600)
    public_path = path.with_name(path.name + ".pub")
    if not public_path.exists():  # the public part is derived from the private one: rebuild it
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True)
        if derived.returncode != 0:
            raise UserError(
                f"cannot read the project key {path}: {derived.stderr.strip()}; restore it or delete it "
                f"and the key pair {key_pair_name(settings)} to start afresh"
            )
        public_path.write_text(derived.stdout)
    public = public_path.read_bytes()
    ec2.import_key_pair(
        KeyName=key_pair_name(settings),
        PublicKeyMaterial=public,
        TagSpecifications=tag_specs(("key-pair",), settings.project_prefix, key_pair_name(settings)),
    )
    return path
