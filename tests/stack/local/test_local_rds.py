"""The local stand-in for RDS (stack/local/rds.py): which hosts, its files, its certificates, its
record, and the script provision.py sends it (exact text; it runs for real in tests/e2e/test_rds_e2e.py)."""

import datetime
import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from stack.local import rds
from stack.local.network import assign_addresses
from stack.secrets import verifier_matches

NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.UTC)


def test_with_rds_the_stand_in_takes_the_db_hosts_place_and_address():
    names = {"des-db": ("db", None), "des-backend-a": ("backend", "a"), "des-kong": ("kong", None)}
    wanted = rds.wanted_hosts(names, "des")
    assert wanted == {"des-rds": ("rds", None), "des-backend-a": ("backend", "a"), "des-kong": ("kong", None)}
    assert assign_addresses("10.77.0.0/24", wanted, {})["des-rds"] == "10.77.0.10"


def test_postgresql_listens_on_the_private_address_only_with_tls_and_scram():
    assert rds.conf("10.77.0.10", "/etc/postgresql/15/main") == (
        "# Written by provision.py (stack/local/rds.py): the local stand-in for RDS.\n"
        "listen_addresses = '10.77.0.10'\n"
        "ssl = on\n"
        "ssl_cert_file = '/etc/postgresql/15/main/rds-server.crt'\n"
        "ssl_key_file = '/etc/postgresql/15/main/rds-server.key'\n"
        "ssl_min_protocol_version = 'TLSv1.2'\n"
        "password_encryption = 'scram-sha-256'\n"
        "max_connections = 200\n"
    )
    assert rds.pg_hba("10.77.0.0/24") == (
        "# Written by provision.py (stack/local/rds.py): the local stand-in for RDS.\n"
        "local   all  postgres          peer\n"
        "hostssl all  all       10.77.0.0/24  scram-sha-256\n"
    )


def test_the_server_certificate_is_signed_by_the_ca_for_the_stand_ins_address():
    ca_key, ca_pem = rds.new_ca("des", NOW)
    _key, cert_pem = rds.server_certificate(ca_key, ca_pem, "des-rds", "10.77.0.10", NOW)
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(address) for address in names.get_values_for_type(x509.IPAddress)] == ["10.77.0.10"]
    assert names.get_values_for_type(x509.DNSName) == ["des-rds"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_the_ca_is_made_once_private_to_its_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path))
    first = rds.ensure_ca("des")
    assert rds.ensure_ca("des") == first
    assert (tmp_path / "rds-ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "rds-ca").stat().st_mode & 0o777 == 0o700


def test_the_record_has_the_agreed_shape_with_the_cas_pem():
    assert rds.record("des-rds", "10.77.0.10", "PEM") == {
        "service": "rds",
        "identifier": "des-rds",
        "address": "10.77.0.10",
        "port": 5432,
        "master_user": "sprint2admin",
        "ca_bundle_pem": "PEM",
    }


def test_the_script_sets_the_master_password_as_a_verifier_only_when_it_does_not_log_in():
    script = rds.configure_script(
        address="10.77.0.10",
        subnet="10.77.0.0/24",
        password="master-horse-battery",
        server_key="KEY",
        server_cert="CERT",
        ca_pem="CA\n",
    )
    lines = script.splitlines()
    assert lines[:4] == [
        "set -e",
        "cd /",
        "export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1",
        "changed=",
    ]
    login = (
        "PGPASSWORD=master-horse-battery psql -X -q -tA 'host=10.77.0.10 port=5432 dbname=postgres "
        "user=sprint2admin sslmode=verify-full sslrootcert=/root/rds-stand-in-ca.pem connect_timeout=5' "
        "-c 'SELECT 1' >/dev/null 2>&1"
    )
    assert f"if ! {login}; then" in lines
    role = next(line for line in lines if "CREATE ROLE" in line)
    verifiers = set(re.findall(r"SCRAM-SHA-256\$[^'\"]+", role))
    assert len(verifiers) == 1 and verifier_matches(verifiers.pop(), "master-horse-battery")
    assert role.count("master-horse-battery") == 0  # the role's SQL carries the verifier only
    assert "WITH LOGIN CREATEROLE CREATEDB NOSUPERUSER" in role
    # The key and certificates go to postgres's folder through here-documents, never a command line.
    assert 'if put "/etc/postgresql/"$version"/main/rds-server.key" 600 <<\'EOF_RDS\'' in lines
    assert lines[lines.index('if put "/etc/postgresql/"$version"/main/rds-server.key" 600 <<\'EOF_RDS\'') + 1] == "KEY"
    assert lines[-1] == 'if [ -n "$changed" ]; then echo changed; fi'
