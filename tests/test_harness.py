"""The shared deploy harness: facts are explicit, handlers follow changes, uploads are visible."""

import hashlib
from io import StringIO

import pytest
from pyinfra import inventory
from pyinfra.api import deploy
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.operations import files, server

from tests.harness import MissingFact, run_deploy


@deploy("Demo")
def demo(word="hello"):
    addresses = ",".join(backend.data.private_ip for backend in inventory.get_group("backends"))
    upload = files.put(name="Upload the demo file", src=StringIO(f"{word} {addresses}\n"), dest="/etc/demo", mode="644")
    server.shell(name="Reload the demo", commands=["systemctl reload demo"], _if=upload.did_change, _sudo=True)


BACKENDS = {"backends": [("b1", {"private_ip": "10.0.0.11"}), ("b2", {"private_ip": "10.0.0.12"})]}


def test_fresh_host_uploads_and_reloads():
    run = run_deploy(
        demo,
        facts={File: {"path=/etc/demo": None}, Directory: {"path=/etc/demo": None, "path=/etc": {"mode": 755}}},
        other_hosts=BACKENDS,
        kwargs={"word": "hi"},
    )
    assert run.names == ["Upload the demo file", "Reload the demo"]
    upload = run.op("Upload the demo file")
    assert upload.changes and upload.full_name == "Demo | Upload the demo file"
    assert upload.uploads == {"/etc/demo": "hi 10.0.0.11,10.0.0.12\n"}
    reload = run.op("Reload the demo")
    assert reload.changes and reload.conditional
    assert reload.commands == ["systemctl reload demo"]
    assert reload.global_arguments["_sudo"] is True


def test_unchanged_file_skips_the_handler():
    text = "hello 10.0.0.11,10.0.0.12\n"
    facts = {
        File: {"path=/etc/demo": {"mode": 644, "user": "root", "group": "root", "size": len(text)}},
        Sha1File: {"path=/etc/demo": hashlib.sha1(text.encode()).hexdigest()},
        Directory: {"path=/etc": {"mode": 755}},
    }
    run = run_deploy(demo, facts=facts, other_hosts=BACKENDS)
    assert run.changed == []
    assert run.op("Reload the demo").commands == []


def test_a_fact_left_out_names_the_key_to_add():
    with pytest.raises(MissingFact, match=r'facts\[File\] = \{"path=/etc/demo": value\}'):
        run_deploy(demo, facts={}, other_hosts=BACKENDS)


def test_yes_asks_each_fact_as_one_real_run_does():
    text = "hello 10.0.0.11,10.0.0.12\n"
    facts = {
        File: {"path=/etc/demo": {"mode": 644, "user": "root", "group": "root", "size": len(text)}},
        Sha1File: {"path=/etc/demo": hashlib.sha1(text.encode()).hexdigest()},
        Directory: {"path=/etc": {"mode": 755}},
    }
    previewed = run_deploy(demo, facts=facts, other_hosts=BACKENDS)
    once = run_deploy(demo, facts=facts, other_hosts=BACKENDS, yes=True)
    assert once.changed == previewed.changed == []
    # Without a preview (pyinfra -y) the upload's body runs once: half the reads.
    assert len(previewed.fact_calls) == 2 * len(once.fact_calls)
    assert once.fact_calls.count("files.File(path=/etc/demo)") == 1
