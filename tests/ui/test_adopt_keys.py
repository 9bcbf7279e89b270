"""The adopters' short path from home (D), a keymap file that rebinds a key, the theme remembered,
help showing keys as they are pressed, and the palette listing every action of the screen."""

from __future__ import annotations

import pytest

from labtui.store import Store
from screens.adopt import AdoptScreen
from screens.app import LabApp
from screens.home import HomeScreen
from screens.widgets.nodes_editor import NodesEditor
from screens.wizard import WizardScreen
from tests.ui.conftest import SIZES, footer_cut, settle


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_adopt_path_kubeconfig_nodes_cloud_then_the_doctor_stage(lab_home, tmp_path, size, monkeypatch):
    import labtui.doctor.run as dr

    # the doctor's own reading has its end-to-end tests; here the screen flow is under test, so the
    # doctor finds nothing reachable and says so (no network in this test)
    seen: list[str | None] = []

    def no_sources(ctx, **kw):
        from labtui.doctor.model import DoctorFacts, Unchecked

        seen.append(ctx.inputs.get("kubeconfig"))
        return DoctorFacts(cluster=ctx.session.name, unchecked=[Unchecked("kube", "the Kubernetes API", "not reached",
                                                                          "check the kubeconfig")])
    monkeypatch.setattr(dr, "gather_session", no_sources)
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    app = LabApp(store=Store())
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.press("D")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, AdoptScreen)
        assert footer_cut(screen) == []
        # nothing given: refused with what to do, nothing created
        await pilot.press(*"old-cluster")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        text = str(screen.query_one("#adopt-problems").render())
        assert "no kubeconfig and no nodes" in text and not app.store.has_session("old-cluster")
        # a kubeconfig path that does not exist is named as such
        screen.query_one("#a-kubeconfig").value = str(tmp_path / "nope.conf")
        await pilot.pause()
        assert "does not exist" in str(screen.query_one("#a-kubeconfig-note").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert "Kubeconfig file: " in str(screen.query_one("#adopt-problems").render())
        assert app.focused is screen.query_one("#a-kubeconfig")
        screen.query_one("#a-kubeconfig").value = str(kubeconfig)
        editor = screen.query_one(NodesEditor)
        for name, address in (("cp1", "10.100.200.4"), ("w1", "10.100.200.21")):
            editor.query_one("#node-name").value = name
            editor.query_one("#node-address").value = address
            editor.add_from_inputs()
        await pilot.press("ctrl+s")
        await settle(app, pilot, 8)
        assert isinstance(app.screen, WizardScreen)
        rec = app.store.get_session("old-cluster")
        assert rec.wizard == "doctor" and rec.inputs["adopted"] is True
        assert rec.inputs["kubeconfig"] == str(kubeconfig)
        assert [(n["name"], n["role"]) for n in rec.plan["nodes"]] == [("cp1", "control-plane"), ("w1", "worker")]
        wizard = app.screen
        assert wizard.current[0].id == "doctor" and wizard.current[1].id == "doctor"
        # the Doctor step read the cluster in the background and says what it could not check
        assert seen and seen[-1] == str(kubeconfig)
        status = str(wizard.query_one("#step-status").render())
        assert "could not check" in status
        assert "not reached" in str(wizard.query_one("#step-actions").render())


async def test_keymap_file_rebinds_a_key_and_help_shows_keys_as_pressed(lab_home):
    config = lab_home / "config"
    config.mkdir(parents=True)
    (config / "keymap.toml").write_text('[keymap]\n"home.new" = "a"\n')
    app = LabApp(store=Store())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")  # the old key does nothing now
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, WizardScreen)
        await pilot.press("f1")
        await settle(app, pilot)
        help_text = app.screen.markdown
        assert "| `f1 / ?` | Help |" in help_text and "| `^s` | Do it |" in help_text
        assert "question_mark" not in help_text and "ctrl+s" not in help_text
        await pilot.press("escape", "escape")
        await settle(app, pilot)
        await pilot.press("f1")
        await settle(app, pilot)
        assert "| `a` | New lab |" in app.screen.markdown  # help follows the keymap


async def test_broken_keymap_file_is_named_and_the_defaults_stay(lab_home):
    config = lab_home / "config"
    config.mkdir(parents=True)
    (config / "keymap.toml").write_text('[keymap\n"home.new" = \n')
    app = LabApp(store=Store())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app._keymap_problem and "keymap.toml cannot be read" in app._keymap_problem
        await pilot.press("n")
        await settle(app, pilot)
        assert isinstance(app.screen, WizardScreen)


async def test_theme_is_remembered_and_the_palette_lists_the_screens_actions(lab_home):
    app = LabApp(store=Store())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.theme = "nord"
        await settle(app, pilot)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("New lab", "Delete", "Doctor a cluster", "Help", "Refresh", "Theme"):
            assert title in commands, title
    app = LabApp(store=Store())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.theme == "nord"
