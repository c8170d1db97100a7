"""The gateway's load-balancer hooks of the provider contract, as the rolling deploy calls them."""

from stack.providers import provider_named
from stack.settings import settings_from


def test_local_hosts_have_no_load_balancer_and_say_so(capsys):
    provider = provider_named("local")
    settings = settings_from({"gateway": {"nodes": 2}})
    assert provider.gateway_balanced(settings) is False
    provider.gateway_out(settings, "des-kong-2")
    provider.gateway_in(settings, "des-kong-2")
    assert capsys.readouterr().out == (
        "  des-kong-2: no load balancer on local hosts, nothing to take out\n"
        "  des-kong-2: no load balancer on local hosts, nothing to put back\n"
    )


def test_aws_balances_from_two_nodes_or_when_asked():
    provider = provider_named("aws")
    assert provider.gateway_balanced(settings_from({})) is False
    assert provider.gateway_balanced(settings_from({"gateway": {"nodes": 2}})) is True
    assert provider.gateway_balanced(settings_from({"gateway": {"load_balancer": True}})) is True


def test_aws_without_a_load_balancer_has_nothing_to_move(capsys):
    provider = provider_named("aws")
    settings = settings_from({})
    provider.gateway_out(settings, "des-kong")
    provider.gateway_in(settings, "des-kong")
    assert capsys.readouterr().out == (
        "  des-kong: no load balancer (gateway.nodes is 1 and gateway.load_balancer is off), nothing to take out\n"
        "  des-kong: no load balancer (gateway.nodes is 1 and gateway.load_balancer is off), nothing to put back\n"
    )
