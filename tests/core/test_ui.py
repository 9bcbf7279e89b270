"""The UI driven through Textual's Pilot, as a user would."""

from __future__ import annotations

from labtui.store import Store
from screens.app import LabApp
from screens.home import HomeScreen
from screens.modals import ConfirmModal
from screens.wizard import WizardScreen
from screens.widgets.nodes_editor import NodesEditor

SIZE = (140, 45)


async def settle(app, pilot, rounds: int = 4) -> None:
    from tests.ui.conftest import _wait_workers  # a replaced preview is cancelled, not failed

    await _wait_workers(app)
    for _ in range(rounds):
        await pilot.pause(0.05)


async def add_node(pilot, name: str, address: str) -> None:
    await pilot.press(*name)
    await pilot.press("tab")
    await pilot.press(*address)
    await pilot.press("enter")
    await pilot.pause()


async def test_create_lab_quit_midway_resume_same_step(lab_home):
    app = LabApp(store=Store())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await settle(app, pilot)
        assert isinstance(app.screen, WizardScreen)
        await pilot.press(*"lab1")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen.current[1].id == "nodes"
        await add_node(pilot, "cp1", "10.100.200.4")
        await add_node(pilot, "w1", "10.100.200.21")
        assert [n["name"] for n in app.screen.query_one(NodesEditor).nodes] == ["cp1", "w1"]
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        wizard = app.screen
        assert wizard.current[1].id == "networks"
        # defaults avoid the node subnet (kubeadm's 10.96.0.0/12 would contain 10.100.200.0/24)
        assert wizard.query_one("#f-node_subnet").value == "10.100.200.0/24"
        assert wizard.query_one("#f-service_cidr").value == "172.20.0.0/16"
        # the user types a pod CIDR and quits before pressing save
        pod = wizard.query_one("#f-pod_cidr")
        pod.value = "172.18.0.0/16"
        await pilot.pause(0.5)  # the draft is saved as typed
        await pilot.press("ctrl+q")

    # a new process: the home screen lists it, enter resumes on the same step with the inputs
    app = LabApp(store=Store())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        table = app.screen.query_one("#sessions")
        assert table.row_count == 1
        await pilot.press("enter")
        await settle(app, pilot, 6)
        wizard = app.screen
        assert isinstance(wizard, WizardScreen) and wizard.current[1].id == "networks"
        assert wizard.query_one("#f-pod_cidr").value == "172.18.0.0/16"
        # finish: networks, versions (defaults), review
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert wizard.current[1].id == "versions"
        assert wizard.query_one("#f-encapsulation").value == "IPIP"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert wizard.current[1].id == "sources"  # the upstream defaults shown: saved as they are
        assert wizard.query_one("#f-src_kubernetes_repo").value == "https://pkgs.k8s.io/core:/stable:"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert wizard.current[1].id == "review"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    rec = Store().get_session("lab1")
    assert rec.plan["pod_cidr"] == "172.18.0.0/16"
    assert [n["name"] for n in rec.plan["nodes"]] == ["cp1", "w1"]
    assert rec.plan["encapsulation"] == "IPIP"


async def test_resume_by_name_lands_on_step(lab_home):
    store = Store()
    store.create_session("lab2")
    store.save_inputs("lab2", {"cloud": "", "nodes": [{"name": "cp1", "address": "10.0.0.5", "role": "control-plane"}]})
    app = LabApp(store=store, resume="lab2")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 6)
        assert isinstance(app.screen, WizardScreen)
        assert app.screen.current[1].id == "lab"  # nothing was run yet: the first open step
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen.current[1].id == "nodes"
        assert [n["name"] for n in app.screen.query_one(NodesEditor).nodes] == ["cp1"]


async def test_bad_input_is_shown_and_nothing_is_lost(lab_home):
    store = Store()
    store.create_session("lab3")
    store.save_inputs("lab3", {"cloud": "", "nodes": [{"name": "cp1", "address": "10.100.200.4", "role": "control-plane"}]})
    app = LabApp(store=store, resume="lab3")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 6)
        app.screen._show(app.screen.current[0], app.screen.current[0].step("networks"))
        await settle(app, pilot)
        app.screen.query_one("#f-pod_cidr").value = "10.100.0.0/16"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        problems = str(app.screen.query_one("#step-problems").render())
        assert "10.100.0.0/16 overlaps the node subnet 10.100.200.0/24" in problems
        assert app.screen.current[1].id == "networks"
    assert Store().get_session("lab3").inputs["pod_cidr"] == "10.100.0.0/16"


async def test_duplicate_lab_name_is_refused(lab_home):
    store = Store()
    store.create_session("taken")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await settle(app, pilot)
        await pilot.press(*"taken")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert "already exists" in str(app.screen.query_one("#step-problems").render())
        assert app.screen.lab is None


async def test_delete_asks_first(lab_home):
    store = Store()
    store.create_session("keep")
    store.create_session("drop")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#sessions")
        names = [str(k.value) for k in table.rows]
        table.move_cursor(row=names.index("drop"))
        await pilot.press("d")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal)
        assert "drop" in app.screen.title_text
        await pilot.press("n")  # refuse: nothing deleted
        await settle(app, pilot)
        assert store.has_session("drop")
        await pilot.press("d")
        await settle(app, pilot)
        await pilot.press("y")
        await settle(app, pilot)
        assert not store.has_session("drop") and store.has_session("keep")
        assert app.screen.query_one("#sessions").row_count == 1


async def test_palette_lists_sessions_and_help_opens(lab_home):
    from textual.command import CommandPalette

    store = Store()
    store.create_session("alpha")
    store.create_session("beta")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await settle(app, pilot)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"resume")
        await settle(app, pilot, 10)
        options = app.screen.query_one("CommandList")
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any("alpha" in p for p in prompts) and any("beta" in p for p in prompts)
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("f1")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HelpScreen"


async def test_resume_after_a_finished_stage_lands_on_the_next_stage(lab_home, tmp_path):
    """`labtui up NAME --plan FILE --until plan`, then `labtui resume NAME`: the Plan stage is done, so
    the wizard opens on the next stage's first step (a walk found it opening on "Review and save")."""
    from labtui.cli import main

    plan = tmp_path / "plan.yaml"
    plan.write_text("name: upped\ncloud: null\nnode_subnet: 10.100.200.0/24\nnodes:\n"
                    "- {name: cp1, address: 10.100.200.4, role: control-plane}\n"
                    "- {name: w1, address: 10.100.200.5, role: worker}\n")
    assert main(["up", "upped", "--plan", str(plan), "--until", "plan"]) == 0
    store = Store()
    assert store.get_session("upped").wizard == "plan"
    app = LabApp(store=store, resume="upped")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 8)
        assert isinstance(app.screen, WizardScreen)
        wizard, step = app.screen.current
        assert wizard.id != "plan", step.id
        # no cloud in the plan: the Provision stage does not apply (its steps show skipped from the start,
        # issue 18 item 7), so the next stage to do is Nodes
        assert wizard.id == "nodes" and step.id == wizard.steps[0].id
    assert Store().get_session("upped").wizard == "nodes"


async def test_the_lab_name_error_follows_the_typing(lab_home):
    """Issue 18, item 8: the error said "'My Lab' is not valid" after the field was corrected; every
    other field clears as you type."""
    store = Store()
    store.create_session("taken")
    app = LabApp(store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await settle(app, pilot)
        await pilot.press(*"My Lab")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        problems = lambda: str(app.screen.query_one("#step-problems").render())  # noqa: E731
        assert "'My Lab' is not valid" in problems()
        shown = app.screen.query_one("#step-problems").region  # on screen at 80x24, not below the fold
        pane = app.screen.query_one("#step-pane").region
        assert shown.height and pane.y <= shown.y and shown.bottom <= pane.bottom, (shown, pane)
        name = app.screen.query_one("#f-name")
        name.value = "my-lab"
        await settle(app, pilot)
        assert problems().strip() == "", problems()
        name.value = "My"
        await settle(app, pilot)
        assert "'My' is not valid" in problems()
        name.value = "taken"
        await settle(app, pilot)
        assert "'taken' already exists" in problems()
        name.value = "my-lab"
        await settle(app, pilot)
        assert problems().strip() == ""
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert app.screen.lab is not None and app.screen.lab.name == "my-lab"
