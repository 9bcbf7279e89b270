"""The plan wizard's Machines step as a learner meets it at 80x24: with a cloud, 'labtui creates
them on the cloud' shows the provision fields (empty = chosen from the cloud later), a bad field is
refused by its label with the focus on it, 'I have machines already' hides them, and the saved plan
carries the provision block. Without a cloud the step is skipped with its reason."""

from __future__ import annotations

import subprocess

import yaml

from labtui.store import Store
from screens.app import LabApp
from screens.wizard import WizardScreen
from tests.ui.conftest import settle

SIZE = (80, 24)


def _clouds(tmp_path, monkeypatch):
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"study": {
        "auth": {"auth_url": "http://192.0.2.10:5000/v3", "username": "me", "password": "not-read-here",
                 "project_name": "study"}, "region_name": "RegionOne"}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))


async def _add_node(pilot, name: str, address: str) -> None:
    await pilot.press(*name, "tab", *address, "enter")
    await pilot.pause()


def _on_screen(screen, wid: str) -> bool:
    w = screen.query_one(wid)
    return w.display and w.region.width > 0 and w.region.right <= screen.size.width


async def test_plan_wizard_provisioning_saved_into_the_plan(lab_home, tmp_path, monkeypatch):
    _clouds(tmp_path, monkeypatch)
    key = tmp_path / "id_lab"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    app = LabApp(store=Store())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        await pilot.press(*"prov1")
        assert screen.query_one("#f-cloud").value == "study"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "machines"
        # labtui creates them: the default with a cloud; every provision field is shown and fits 80 columns
        assert screen.query_one("#f-provision_mode").value == "create"
        for wid in ("#f-prov_image", "#f-prov_flavor_worker", "#f-prov_external_network", "#f-prov_ssh_cidr",
                    "#f-prov_public_key_file", "#f-prov_floating_ip"):
            screen.query_one(wid).scroll_visible(animate=False)
            await pilot.pause()
            assert _on_screen(screen, wid), wid
        # 'I have machines already' hides them; back to 'labtui creates them' shows them again
        screen.query_one("#f-provision_mode").value = "adopt"
        await pilot.pause()
        assert not screen.query_one("#f-prov_image").display and not screen.query_one("#f-prov_ssh_cidr").display
        screen.query_one("#f-provision_mode").value = "create"
        await pilot.pause()
        assert screen.query_one("#f-prov_image").display
        # a bad SSH source and a public key file that does not exist: refused by their labels
        screen.query_one("#f-prov_ssh_cidr").value = "203.0.113.300/32"
        screen.query_one("#f-prov_public_key_file").value = str(tmp_path / "nope.pub")
        screen.query_one("#f-prov_dns_nameservers").value = "9.9.9.9, dns.example"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        problems = str(screen.query_one("#step-problems").render())
        assert "✗ SSH source: '203.0.113.300/32' is not a CIDR" in problems
        assert f"✗ Public key file: {tmp_path / 'nope.pub'} does not exist" in problems
        assert "✗ DNS servers: 'dns.example' is not an IP address" in problems
        assert screen.current[1].id == "machines" and app.focused.id == "f-prov_ssh_cidr"
        # corrected: the error goes as the value is fixed
        screen.query_one("#f-prov_ssh_cidr").value = "203.0.113.7/32"
        screen.query_one("#f-prov_public_key_file").value = str(key) + ".pub"
        screen.query_one("#f-prov_external_network").value = "public"
        screen.query_one("#f-prov_flavor_worker").value = "m1.small"
        screen.query_one("#f-prov_dns_nameservers").value = "9.9.9.9, 1.1.1.1"  # the new subnet's DNS (audit F10)
        await pilot.pause(0.5)
        assert "SSH source" not in str(screen.query_one("#step-problems").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "nodes"
        await _add_node(pilot, "cp1", "10.60.0.10")
        await _add_node(pilot, "w1", "10.60.0.11")
        for step in ("nodes", "networks", "versions", "sources"):
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert screen.current[1].id != step, str(screen.query_one("#step-problems").render())
        assert screen.current[1].id == "review"
        review = str(screen.query_one("#step-actions").render())
        assert "Machines: labtui creates them" in review and "floating IP on the control plane" in review
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    plan = Store().get_session("prov1").plan
    assert plan["cloud"] == "study"
    assert plan["provision"] == {
        "image": None, "login_user": None, "flavor_control_plane": None, "flavor_worker": "m1.small",
        "network": None, "external_network": "public", "floating_ip": True, "ssh_cidr": "203.0.113.7/32",
        "keypair": None, "public_key_file": str(key) + ".pub", "availability_zone": None,
        "dns_nameservers": ["9.9.9.9", "1.1.1.1"],
    }


async def test_machines_already_there_saves_no_provision_block(lab_home, tmp_path, monkeypatch, incident_inputs):
    _clouds(tmp_path, monkeypatch)
    store = Store()
    store.create_session("adopt1", cloud="study")
    store.save_inputs("adopt1", dict(incident_inputs, cloud="study", encapsulation="IPIP"))
    app = LabApp(store=store, resume="adopt1")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 6)
        screen = app.screen
        assert screen.current[1].id == "lab"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "machines"
        screen.query_one("#f-provision_mode").value = "adopt"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "nodes"
        screen._show(screen.current[0], screen.current[0].step("review"))
        await settle(app, pilot)
        assert "Machines: adopted" in str(screen.query_one("#step-actions").render())
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    rec = Store().get_session("adopt1")
    assert rec.plan["cloud"] == "study" and rec.plan["provision"] is None


async def test_without_a_cloud_the_machines_step_is_skipped_with_its_reason(lab_home, incident_inputs):
    store = Store()
    store.create_session("nocloud")
    store.save_inputs("nocloud", incident_inputs)
    app = LabApp(store=store, resume="nocloud")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 6)
        screen = app.screen
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert screen.current[1].id == "nodes"  # Machines went by, skipped
        rec = store.get_session("nocloud")
        run = store.step_states(rec.id, "plan")["machines"]
        assert run.state == "skipped" and "no cloud" in run.detail
        screen._show(screen.current[0], screen.current[0].step("machines"))
        await settle(app, pilot)
        assert "does not apply: no cloud" in str(screen.query_one("#step-form").query_one("Static").render())
        assert str(screen.query_one("#step-run").label) == "Continue"
