"""Terraform-style outputs printed from the state."""

from stack.outputs import render_outputs
from stack.settings import settings_from


def test_outputs_list_hosts_and_the_kong_urls():
    state = {"hosts": {
        "des-db": {"role": "db", "private_ip": "172.31.0.4", "public_ip": "198.51.100.4", "ssh_user": "ubuntu"},
        "des-kong": {"role": "kong", "private_ip": "172.31.0.9", "public_ip": "198.51.100.9", "ssh_user": "ubuntu"},
    }}
    text = render_outputs(state, settings_from({"gateway": {"health_path": "/health-check/"}}))
    assert "  des-db    private 172.31.0.4       public 198.51.100.4" in text
    assert "kong_proxy_url = http://198.51.100.9:8000/health-check/" in text
    assert "ssh -L 8001:127.0.0.1:8001 ubuntu@198.51.100.9" in text
