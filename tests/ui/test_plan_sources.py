"""The plan wizard's Sources step (proxy, mirrors): the upstream defaults shown in the fields, a bad
proxy URL named by its label as it is typed and refused on save (the focus on it, nothing saved), a
good one saved into the plan and named on the review."""

from __future__ import annotations

from labtui.store import Store
from screens.app import LabApp
from tests.ui.conftest import settle

SIZE = (80, 24)


async def _open(app, pilot, step: str):
    await settle(app, pilot, 6)
    screen = app.screen
    screen._show(screen.current[0], screen.current[0].step(step))
    await settle(app, pilot)
    return screen


def _lab(inputs):
    store = Store()
    store.create_session("incident")
    store.save_inputs("incident", dict(inputs, encapsulation="IPIP"))
    store.update_session("incident", step="sources")
    return store


async def test_sources_step_refuses_a_bad_proxy_and_saves_a_good_one(lab_home, incident_inputs):
    store = _lab(incident_inputs)
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "sources")
        assert screen.current[1].id == "sources"
        # the defaults are shown: the upstream locations
        assert screen.query_one("#f-src_kubernetes_repo").value == "https://pkgs.k8s.io/core:/stable:"
        assert screen.query_one("#f-src_docker_repo").value == "https://download.docker.com/linux"
        assert screen.query_one("#f-src_http_proxy").value == ""
        # a bad proxy is named by its label while it is typed (no save pressed)
        proxy = screen.query_one("#f-src_http_proxy")
        proxy.focus()
        await pilot.press(*"htp://10.0.0.1:3142")
        await pilot.pause(0.6)
        await settle(app, pilot)
        problems = str(screen.query_one("#step-problems").render())
        assert "✗ HTTP proxy: 'htp://10.0.0.1:3142' is not an http:// or https:// URL" in problems
        assert "sources.http_proxy" not in problems and "http://10.0.0.1:3142" in problems  # the example
        # save is refused, the focus stays on the field, nothing reaches the plan, the typed text is kept
        screen.query_one("#f-src_registry_mirror").focus()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "sources"
        assert app.focused is proxy and proxy.value == "htp://10.0.0.1:3142"
        assert store.get_session("incident").inputs["src_http_proxy"] == "htp://10.0.0.1:3142"  # the draft is kept
        assert not store.get_session("incident").plan
        # corrected: the error goes, the step saves and the wizard moves to the review
        proxy.value = "http://10.0.0.1:3142"
        await pilot.pause(0.6)
        await settle(app, pilot)
        assert "HTTP proxy" not in str(screen.query_one("#step-problems").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "review"
        summary = str(screen.query_one("#step-actions").render())
        assert "Sources: HTTP proxy http://10.0.0.1:3142" in summary
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    plan = Store().get_session("incident").plan
    assert plan["sources"]["http_proxy"] == "http://10.0.0.1:3142"
    assert plan["sources"]["kubernetes_repo"] == "https://pkgs.k8s.io/core:/stable:"


async def test_a_lab_that_never_opened_the_sources_step_uses_upstream(lab_home, incident_inputs):
    store = _lab(incident_inputs)
    store.update_session("incident", step="review")
    app = LabApp(store=store, resume="incident")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(app, pilot, "review")
        assert "Sources: upstream" in str(screen.query_one("#step-actions").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    assert Store().get_session("incident").plan["sources"]["http_proxy"] is None
