from stack.local.plan import Step, make_plan, network_setup, render_plan
from stack.settings import host_names, settings_from
from stack.state import Host

WANTED = host_names(settings_from({"backends": ["b", "c"]}))
ADDRESSES = {
    "des-db": "10.77.0.10",
    "des-backend-b": "10.77.0.21",
    "des-backend-c": "10.77.0.20",
    "des-kong": "10.77.0.11",
}
RECORDED = {
    "des-db": Host("db", "10.77.0.10", "10.77.0.10", "root"),
    "des-backend-a": Host("backend", "10.77.0.20", "10.77.0.20", "root"),
    "des-backend-b": Host("backend", "10.77.0.21", "10.77.0.21", "root"),
    "des-kong": Host("kong", "10.77.0.11", "10.77.0.11", "root"),
}


def test_make_plan_decides_create_start_keep_destroy():
    steps = make_plan(WANTED, ADDRESSES, RECORDED, running={"des-db", "des-backend-b"})
    assert steps == [
        Step("keep", "des-db", "db", "10.77.0.10"),
        Step("keep", "des-backend-b", "backend", "10.77.0.21"),
        Step("create", "des-backend-c", "backend", "10.77.0.20"),
        Step("start", "des-kong", "kong", "10.77.0.11"),
        Step("destroy", "des-backend-a", "backend", "10.77.0.20"),
    ]


def test_render_plan():
    steps = make_plan(WANTED, ADDRESSES, RECORDED, running={"des-db", "des-backend-b"})
    assert render_plan(steps, ["create bridge br-des 10.77.0.1 with NAT for 10.77.0.0/24"]) == (
        "+ create bridge br-des 10.77.0.1 with NAT for 10.77.0.0/24\n"
        "  des-db         (db, 10.77.0.10) running, unchanged\n"
        "  des-backend-b  (backend, 10.77.0.21) running, unchanged\n"
        "+ create des-backend-c  (backend, 10.77.0.20)\n"
        "~ start des-kong       (kong, 10.77.0.11)\n"
        "- destroy des-backend-a  (backend, 10.77.0.20)\n"
        "Plan: 1 to create, 1 to start, 1 to destroy, 2 unchanged."
    )


def test_render_plan_says_when_nothing_changes():
    steps = [Step("keep", "des-db", "db", "10.77.0.10"), Step("keep", "des-kong", "kong", "10.77.0.11")]
    assert render_plan(steps, []) == (
        "  des-db    (db, 10.77.0.10) running, unchanged\n"
        "  des-kong  (kong, 10.77.0.11) running, unchanged\n"
        "No changes: 2 hosts running."
    )


def test_a_missing_bridge_is_a_change_even_with_every_host_running():
    steps = [Step("keep", "des-db", "db", "10.77.0.10")]
    assert render_plan(steps, ["create bridge br-des"]).endswith(
        "Plan: 0 to create, 0 to start, 0 to destroy, 1 unchanged."
    )


def test_a_host_recorded_but_interrupted_while_created_is_created_again():
    recorded = {
        **RECORDED,
        "des-kong": Host("kong", "10.77.0.11", "10.77.0.11", "root", extra={"local": {"incomplete": True}}),
    }
    steps = make_plan(WANTED, ADDRESSES, recorded, running=set())
    assert Step("create", "des-kong", "kong", "10.77.0.11") in steps


def test_the_network_is_created_when_the_bridge_or_its_nat_rule_is_missing():
    create = ["create bridge br-des 10.77.0.1 with NAT for 10.77.0.0/24"]
    assert network_setup("br-des", "10.77.0.1", "10.77.0.0/24", False, False) == (create, [])
    assert network_setup("br-des", "10.77.0.1", "10.77.0.0/24", False, None) == (create, [])
    assert network_setup("br-des", "10.77.0.1", "10.77.0.0/24", True, False) == (create, [])
    assert network_setup("br-des", "10.77.0.1", "10.77.0.0/24", True, True) == ([], [])


def test_a_nat_rule_this_user_cannot_read_is_a_note_not_a_guess():
    assert network_setup("br-des", "10.77.0.1", "10.77.0.0/24", True, None) == (
        [],
        [
            "not checked: the NAT rule of br-des for 10.77.0.0/24 (reading iptables needs root); apply adds it if missing"
        ],
    )


def test_notes_follow_the_summary():
    steps = [Step("keep", "des-db", "db", "10.77.0.10")]
    assert render_plan(steps, [], ["not checked: x"]) == (
        "  des-db  (db, 10.77.0.10) running, unchanged\nNo changes: 1 hosts running.\nnote: not checked: x"
    )
