"""The Doctor screen driven through Textual's Pilot: findings, detail, matrix grid, a fix applied
through the confirmation modal. The gathering is replaced by scenario facts (the screen is under
test here; the gatherers have their own end-to-end tests), the adapters' calls are recorded."""

from __future__ import annotations

from labtui.doctor.fixes import simulate
from labtui.doctor.model import ProbeResult
from labtui.store import Store
from screens.app import LabApp
from screens.doctor import DoctorScreen
from screens.modals import ConfirmModal
from tests.doctor.scenarios import incident
from tests.doctor import stand_ins

SIZE = (150, 50)


async def settle(app, pilot, rounds: int = 4) -> None:
    await app.workers.wait_for_complete()
    for _ in range(rounds):
        await pilot.pause(0.05)


def _matrix(facts, ok):
    facts.matrix = [ProbeResult(a.name, b.name, ok, "172.16.0.1", "172.16.1.1", "0/2 replies" if not ok else "2/2 replies")
                    for a in facts.nodes for b in facts.nodes if a is not b]
    return facts


async def test_doctor_screen_shows_the_incident_and_applies_fix_1(lab_home, monkeypatch):
    import labtui.doctor.run as dr

    state = {"facts": _matrix(incident(), False)}
    ran: list[str] = []
    monkeypatch.setattr(dr, "gather_session", lambda ctx, **kw: state["facts"].copy())
    stand_ins.install(monkeypatch, ran)

    store = Store()
    store.create_session("incident", wizard="doctor")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(DoctorScreen("incident"))
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DoctorScreen)
        assert screen.diag.exit_code == 1
        summary = str(screen.query_one("#doctor-summary").render())
        assert "FINDINGS" in summary and "0/12" in summary
        detail = str(screen.query_one("#detail").render())
        assert "CrossSubnet" in detail and "anti-spoofing" in detail and "[recommended]" in detail
        grid = screen.query_one("#matrix")
        assert grid.row_count == 4 and len(grid.columns) == 5
        assert "FAIL" in str(grid.get_cell("k8s-cp", "k8s-w1"))
        # apply fix 1: the modal lists the exact changes; confirm
        await pilot.press("1")
        await settle(app, pilot)
        assert isinstance(app.screen, ConfirmModal)
        lines = "\n".join(app.screen.lines)
        assert "--protocol 4 --remote-group k8s" in lines and "ipipMode" in lines
        assert lines.index("security group rule create") < lines.index("ipipMode")  # network first
        diag = screen.diag
        state["facts"] = _matrix(simulate(diag.facts, diag.option(1).actions), True)
        await pilot.press("y")
        await settle(app, pilot, 8)
        assert app.screen is screen
        assert ran == ["sg-rule", "pool-mode"]
        assert screen.diag.exit_code == 0
        assert "ok" in str(screen.query_one("#matrix").get_cell("k8s-w1", "k8s-cp"))
        assert "no findings" in str(screen.query_one("#findings").get_option_at_index(0).prompt)
        # help and back
        await pilot.press("f1")
        await settle(app, pilot)
        assert "Fix options" in app.screen.markdown
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, DoctorScreen)


async def test_doctor_screen_could_not_check(lab_home, monkeypatch):
    import labtui.doctor.run as dr
    from labtui.doctor.model import DoctorFacts, Node, Unchecked

    facts = DoctorFacts(cluster="x", nodes=[Node("a"), Node("b")],
                        unchecked=[Unchecked("kube", "the Calico pools and nodes (Kubernetes API)", "connection refused",
                                             "check the address")])
    monkeypatch.setattr(dr, "gather_session", lambda ctx, **kw: facts)
    store = Store()
    store.create_session("x", wizard="doctor")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(DoctorScreen("x"))
        await settle(app, pilot)
        screen = app.screen
        assert "COULD NOT CHECK" in str(screen.query_one("#doctor-summary").render())
        assert "connection refused" in str(screen.query_one("#detail").render())
        await pilot.press("1")
        await settle(app, pilot)
        assert isinstance(app.screen, DoctorScreen)  # nothing to fix: no modal


async def test_doctor_screen_grid_shows_every_check_same_node_and_host_rows(lab_home, monkeypatch):
    """The grid carries the whole live matrix: ping, TCP and the DF ping per cross-node cell, the
    same-node cell on the diagonal, and a row per node for host -> pod."""
    import labtui.doctor.run as dr
    from labtui.doctor.matrix import Cell

    facts = _matrix(incident(), False)
    names = [n.name for n in facts.nodes]
    cells = []
    for a in names:
        for b in names:
            if a == b:
                cells += [Cell(check, "same", a, b, True) for check in ("icmp", "tcp", "mtu")]
            else:
                cells += [Cell("icmp", "cross", a, b, False), Cell("tcp", "cross", a, b, False),
                          Cell("mtu", "cross", a, b, False)]
            cells += [Cell(check, "host", a, b, True) for check in ("icmp", "tcp")]
    facts.cells = cells
    monkeypatch.setattr(dr, "gather_session", lambda ctx, **kw: facts)
    store = Store()
    store.create_session("grid", wizard="doctor")
    app = LabApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(DoctorScreen("grid"))
        await settle(app, pilot)
        grid = app.screen.query_one("#matrix")
        a, b = names[0], names[1]
        assert str(grid.get_cell(f"cross:{a}", b)) == "ping✗ tcp✗ DF✗"
        assert str(grid.get_cell(f"cross:{a}", a)) == "ok"  # same node
        assert str(grid.get_cell(f"host:{a}", b)) == "ok"  # host -> pod
        assert grid.row_count == 2 * len(names)
