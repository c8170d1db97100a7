"""--provider local with `db_service: rds`: a database host shaped like what RDS hands over.

A stand-in for Amazon RDS, not RDS: one more local host, `<prefix>-rds`, that provision.py itself
configures (deploy.py never touches it, as it never touches an RDS instance) to what an RDS
instance offers a client, and nothing else:
- PostgreSQL from the distribution, listening on the host's private address only;
- a master user (MASTER_USER) with the password of the secrets (`rds_master_password`), allowed
  to create roles and databases but no superuser, as RDS's master user;
- TLS only (`hostssl`, scram-sha-256: RDS's rds.force_ssl), with a certificate signed by a CA of
  the stand-in's own, made on this machine (DEPLOY_HOME/rds-ca/): its key never leaves it;
  the host gets its own server key and certificate, the backends the CA's certificate only.
Then the state records the `database` entry (stack/database.py) with the CA's PEM text in place
of AWS's bundle URL. The pure parts (certificates, the script, the record) are tested by their
output; configure() runs the script over SSH, its secrets on stdin (never on a command line).
"""

import datetime
import ipaddress
import os
import shlex
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stack.errors import UserError
from stack.operate import session
from stack.operate.commands import as_root, ssh_argv
from stack.operate.hosts import target
from stack.secrets import new_verifier
from stack.state import Host, private_dir
from tasks.packages import install_command, update_command

ROLE = "rds"
MASTER_USER = "sprint2admin"
PORT = 5432
CA_FOLDER = "rds-ca"
CONF = "conf.d/90-rds-stand-in.conf"
SERVER_CERT, SERVER_KEY = "rds-server.crt", "rds-server.key"
CONFIGURE_TIMEOUT_S = 600


def host_name(prefix: str) -> str:
    return f"{prefix}-rds"


def wanted_hosts(names: dict[str, tuple[str, str | None]], prefix: str) -> dict[str, tuple[str, str | None]]:
    """The local hosts with `db_service: rds`: the stand-in in place of a database host."""
    return {host_name(prefix): (ROLE, None), **{name: role for name, role in names.items() if role[0] != "db"}}


# --- the CA and the server certificate (on this machine) ----------------------------------------


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_ca(prefix: str, now: datetime.datetime) -> tuple[str, str]:
    """(key PEM, certificate PEM) of a CA that signs server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} local RDS stand-in CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), _pem(certificate)


def server_certificate(
    ca_key_pem: str, ca_pem: str, name: str, address: str, now: datetime.datetime
) -> tuple[str, str]:
    """(key PEM, certificate PEM) for the stand-in at `address` (and `name`), signed by the CA:
    what sslmode=verify-full checks (the chain and the address the client connected to)."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address(address)), x509.DNSName(name)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _key_pem(key), _pem(certificate)


def ensure_ca(prefix: str) -> tuple[str, str]:
    """The stand-in's CA (key PEM, certificate PEM), made once in DEPLOY_HOME/rds-ca (0700, key 0600)."""
    folder = private_dir(CA_FOLDER)
    key_path, ca_path = folder / "ca.key", folder / "ca.pem"
    if not (key_path.exists() and ca_path.exists()):
        key, certificate = new_ca(prefix, datetime.datetime.now(datetime.UTC))
        _write_private(key_path, key)
        _write_private(ca_path, certificate)
    return key_path.read_text(), ca_path.read_text()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(path.with_suffix(".tmp"), path)


# --- what the stand-in runs (pure) ---------------------------------------------------------------


def conf(address: str, config_dir: str) -> str:
    return (
        "# Written by provision.py (stack/local/rds.py): the local stand-in for RDS.\n"
        f"listen_addresses = '{address}'\n"
        "ssl = on\n"
        f"ssl_cert_file = '{config_dir}/{SERVER_CERT}'\n"
        f"ssl_key_file = '{config_dir}/{SERVER_KEY}'\n"
        "ssl_min_protocol_version = 'TLSv1.2'\n"
        "password_encryption = 'scram-sha-256'\n"
        "max_connections = 200\n"
    )


def pg_hba(subnet: str) -> str:
    """postgres by peer on the socket (the stand-in's own administration); everyone else over TLS
    with a SCRAM password from the private network, as RDS with rds.force_ssl does."""
    return (
        "# Written by provision.py (stack/local/rds.py): the local stand-in for RDS.\n"
        "local   all  postgres          peer\n"
        f"hostssl all  all       {subnet}  scram-sha-256\n"
    )


def _sql(statement: str) -> str:
    return f"runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA -d postgres -c {shlex.quote(statement)}"


# Writes stdin to $1 with mode $2 as postgres (the config folder is postgres's: root writes nothing
# there), beside it and renamed over it; exit status 0 only when the file changed.
PUT = (
    'put() { runuser -u postgres -- sh -c \'umask 077; t=$(mktemp "$1.XXXXXX") && cat > "$t" && '
    'chmod "$2" "$t" && if cmp -s "$t" "$1"; then rm -f "$t"; exit 1; fi; mv -fT "$t" "$1"\' - "$1" "$2"; }'
)


def configure_script(
    *, address: str, subnet: str, password: str, server_key: str, server_cert: str, ca_pem: str
) -> str:
    """The script the stand-in runs as root (`sh -s`, from stdin: its key and password are in it,
    never in a command line): PostgreSQL installed, its files written as postgres, a restart only
    when one changed, the master user's password set only when it does not log in with it
    (checked over TLS against the CA, as a client does). Prints `changed` when it changed something."""
    ca_file = "/root/rds-stand-in-ca.pem"
    login = (
        f"PGPASSWORD={shlex.quote(password)} psql -X -q -tA "
        f"'host={address} port={PORT} dbname=postgres user={MASTER_USER} sslmode=verify-full "
        f"sslrootcert={ca_file} connect_timeout=5' -c 'SELECT 1' >/dev/null 2>&1"
    )
    role = f"{MASTER_USER} WITH LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD '{new_verifier(password)}'"
    exists = _sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{MASTER_USER}'")
    folder = '/etc/postgresql/"$version"/main'
    files = [
        (CONF, conf(address, "/etc/postgresql/$version/main"), "644", False),
        ("pg_hba.conf", pg_hba(subnet), "640", True),
        (SERVER_CERT, server_cert, "644", True),
        (SERVER_KEY, server_key, "600", True),
    ]
    lines = [
        "set -e",
        "cd /",
        "export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1",
        "changed=",
        "if ! command -v pg_lsclusters >/dev/null; then",
        f"  {update_command()}",
        f"  {install_command(['postgresql'])} >/dev/null",
        "  changed=1",
        "fi",
        "version=$(pg_lsclusters --no-header | awk '$2 == \"main\" {print $1; exit}')",
        '[ -n "$version" ] || { echo "no PostgreSQL cluster main after the install" >&2; exit 1; }',
        PUT,
        "umask 077",
        f"cat > {ca_file} <<'EOF_RDS'",
        ca_pem.rstrip("\n"),
        "EOF_RDS",
    ]
    for name, content, mode, literal in files:
        delimiter = "'EOF_RDS'" if literal else "EOF_RDS"  # the conf's $version is expanded
        lines += [f'if put "{folder}/{name}" {mode} <<{delimiter}']
        lines += [content.rstrip("\n"), "EOF_RDS", "then changed=1; fi"]
    lines += [
        'if [ -n "$changed" ]; then systemctl restart postgresql; fi',
        "i=0; until pg_isready -q; do i=$((i + 1)); [ $i -lt 60 ] || exit 1; sleep 0.5; done",
        f"if ! {login}; then",
        f'  if [ -n "$({exists})" ]; then {_sql("ALTER ROLE " + role)}; else {_sql("CREATE ROLE " + role)}; fi',
        f"  {login} || {{ echo 'the master user cannot log in over TLS after its password was set' >&2; exit 1; }}",
        "  changed=1",
        "fi",
        'if [ -n "$changed" ]; then echo changed; fi',
    ]
    return "\n".join(lines) + "\n"


def record(name: str, address: str, ca_pem: str) -> dict:
    """The state's `database` entry for the stand-in (stack/database.py)."""
    return {
        "service": "rds",
        "identifier": name,
        "address": address,
        "port": PORT,
        "master_user": MASTER_USER,
        "ca_bundle_pem": ca_pem,
    }


# --- on the stand-in ----------------------------------------------------------------------------


def configure(name: str, host: Host, subnet: str, prefix: str, password: str) -> tuple[dict, bool]:
    """Configure the running stand-in `name` over SSH; (its `database` entry, whether it changed)."""
    ca_key, ca_pem = ensure_ca(prefix)
    now = datetime.datetime.now(datetime.UTC)
    server_key, server_cert = server_certificate(ca_key, ca_pem, name, host.private_ip, now)
    script = configure_script(
        address=host.private_ip,
        subnet=subnet,
        password=password,
        server_key=server_key,
        server_cert=server_cert,
        ca_pem=ca_pem,
    )
    found = target(name, host, "local")
    with session.ssh_log() as log:
        completed = subprocess.run(
            ssh_argv(found, [as_root(found, "sh -s")], log_file=log),
            input=script,
            capture_output=True,
            text=True,
            timeout=CONFIGURE_TIMEOUT_S,
        )
        problem = session.failure(found, completed.returncode, log)
    if problem or completed.returncode != 0:
        message = problem or (completed.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"cannot configure the RDS stand-in {name}: {message}")
    return record(name, host.private_ip, ca_pem), "changed" in completed.stdout.split()
