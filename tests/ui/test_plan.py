"""The plan wizard as a learner meets it: the review's CrossSubnet warning with its way out, zero
workers refused, key files checked when typed, the node editor (edit a row, enter in the name, a
pasted line with tabs), a failed save keeping the focus on the field and naming its label, and an
error that goes away once the value is corrected."""

from __future__ import annotations

from labtui.store import Store
from screens.app import LabApp
from screens.widgets.nodes_editor import NodesEditor
from tests.ui.conftest import settle

SIZE = (80, 24)


def _lab(inputs, step):
    store = Store()
    store.create_session("incident")
    store.save_inputs("incident", inputs)
    store.update_session("incident", step=step)
    return store


async def _open(app, pilot, step: str):
    await settle(app, pilot, 6)
    screen = app.screen
    screen._show(screen.current[0], screen.current[0].step(step))
    await settle(app, pilot)
    return screen


async def test_review_warns_on_crosssubnet_on_one_subnet_and_offers_ipip_always(lab_home, incident_inputs):
    store = _lab(incident_inputs, "review")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "review")
        problems = str(screen.query_one("#step-problems").render())
        assert "! Encapsulation: IPIPCrossSubnet with every node on one subnet (10.100.200.0/24)" in problems
        assert "anti-spoofing drops those packets" in problems
        button = screen.query_one("#use-always")
        assert button.display and str(button.label) == "Use IPIP Always"
        await pilot.click("#use-always")
        await settle(app, pilot)
        assert store.get_session("incident").inputs["encapsulation"] == "IPIP"
        assert "CrossSubnet" not in str(screen.query_one("#step-problems").render())
        assert not screen.query_one("#use-always").display
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert store.get_session("incident").plan["encapsulation"] == "IPIP"


async def test_review_refuses_a_plan_without_workers(lab_home, incident_inputs):
    inputs = dict(incident_inputs, nodes=[incident_inputs["nodes"][0]], encapsulation="IPIP")
    store = _lab(inputs, "review")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "review")
        assert "✗ Nodes: no worker node" in str(screen.query_one("#step-problems").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert store.get_session("incident").plan == {}
        assert screen.current[1].id == "review"


async def test_nodes_step_refuses_zero_workers_and_a_missing_key_file(lab_home, incident_inputs, tmp_path):
    key = tmp_path / "id_lab"
    key.write_text("not really a key")
    store = _lab(dict(incident_inputs, nodes=[]), "nodes")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "nodes")
        editor = screen.query_one(NodesEditor)
        # enter in the name goes on to the address; it does not add a half node
        editor.query_one("#node-name").focus()
        await pilot.press(*"cp1", "enter")
        assert editor.nodes == [] and app.focused.id == "node-address"
        await pilot.press(*"10.100.200.4")
        # a key file is checked as it is typed
        editor.query_one("#node-key").value = "~/nope/id_missing"
        await pilot.pause()
        assert "does not exist" in str(editor.query_one("#node-key-note").render())
        editor.query_one("#node-key").value = str(key)
        await pilot.pause()
        assert "exists" in str(editor.query_one("#node-key-note").render())
        editor.add_from_inputs()
        await settle(app, pilot)
        assert editor.nodes == [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane", "key_file": str(key)}]
        # one control plane, no worker: refused, with the label and the hint
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        problems = str(screen.query_one("#step-problems").render())
        assert "✗ Nodes: no worker node" in problems and "at least two nodes" in problems
        assert screen.current[1].id == "nodes"
        # a pasted line with a tab spreads over the fields
        editor.query_one("#node-name").focus()
        editor.query_one("#node-name").insert_text_at_cursor("w1\t10.100.200.21\troot")
        await pilot.pause()
        assert [editor.query_one(f"#{w}").value for w in ("node-name", "node-address", "node-user")] == \
            ["w1", "10.100.200.21", "root"]
        editor.add_from_inputs()
        await settle(app, pilot)
        # the old error goes away once corrected (the draft is re-validated as it is saved)
        await pilot.pause(0.5)
        assert "no worker node" not in str(screen.query_one("#step-problems").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "networks"
    nodes = Store().get_session("incident").inputs["nodes"]
    assert [(n["name"], n.get("user")) for n in nodes] == [("cp1", None), ("w1", "root")]


async def test_editing_a_node_row(lab_home, incident_inputs):
    store = _lab(incident_inputs, "nodes")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=(140, 42)) as pilot:
        screen = await _open(app, pilot, "nodes")
        editor = screen.query_one(NodesEditor)
        table = editor.query_one("#nodes-table")
        editor.nodes[1]["ssh_host"] = "203.0.113.7"  # as provisioning writes it (a floating IP): not in the form
        table.focus()
        await pilot.press("down", "enter")  # enter on the row w1 loads it into the form
        await settle(app, pilot)
        assert editor.editing == 1 and editor.query_one("#node-address").value == "10.100.200.21"
        assert str(editor.query_one("#node-add").label) == "Save row"
        editor.query_one("#node-address").value = "10.100.200.31"
        editor.query_one("#node-port").value = "2222"
        editor.query_one("#node-jump").value = "ubuntu@bastion"
        await pilot.click("#node-add")
        await settle(app, pilot)
        assert editor.nodes[1] == {"name": "w1", "address": "10.100.200.31", "role": "worker", "port": 2222,
                                   "proxy_jump": "ubuntu@bastion", "ssh_host": "203.0.113.7"}
        assert [n["name"] for n in editor.nodes] == ["cp1", "w1", "w2"]  # edited in place, nothing re-added
        assert str(table.get_row_at(1)[4]) == "2222" and str(table.get_row_at(1)[6]) == "ubuntu@bastion"
        await pilot.pause(0.5)
    assert Store().get_session("incident").inputs["nodes"][1]["address"] == "10.100.200.31"


async def test_failed_save_keeps_focus_on_the_field_and_names_its_label(lab_home, incident_inputs):
    store = _lab(incident_inputs, "networks")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "networks")
        screen.query_one("#f-pod_cidr").value = "10.100.0.0/16"
        screen.query_one("#f-node_subnet").focus()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        problems = str(screen.query_one("#step-problems").render())
        assert "✗ Pod CIDR: 10.100.0.0/16 overlaps the node subnet 10.100.200.0/24" in problems
        assert "pod_cidr" not in problems
        assert app.focused is screen.query_one("#f-pod_cidr")  # the focus is on the field in error
        # corrected: the old error goes away without pressing save
        screen.query_one("#f-pod_cidr").value = "172.16.0.0/16"
        await pilot.pause(0.6)
        await settle(app, pilot)
        assert "overlaps" not in str(screen.query_one("#step-problems").render())
