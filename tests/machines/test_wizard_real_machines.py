"""The wizard's promise on real machines, walked with the keys a learner presses (Textual Pilot, 140x42):
the plan wizard typed in (the cloud picked from clouds.yaml, the Machines step's provisioning fields, the
three nodes, VXLAN, the Sources step's proxy and stand-in repositories), then every step of the Provision,
Nodes, Cloud and Kubernetes stages run with ctrl+s ("Do it for me"), each confirmation answered `y`,
until the step list shows the Kubernetes stage done. The machines are then asked for themselves over
SSH (containerd.io installed through the real apt, the real containerd running, the Kubernetes packages
held, the SIMULATED cluster holding the three nodes); the wizard's own teardown (ctrl+t) leaves nothing
on the cloud.

Same real/SIMULATED split as tests/machines/test_up_real_machines.py (its docstring), on a project and
a node subnet of its own (machines-wizard, 10.124.0.0/24) so both can run at once. The SIMULATED
cluster's shared state (/run/labtui-simulation, one host directory bound into every machine) would be
shared too: each machine of this lab is pointed at a directory of its own there
(/etc/labtui-simulation.json `cluster_dir`, the simulation's per-machine setting) before its
Kubernetes stage."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import aptrepo, machines

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow]

PROJECT = "machines-wizard"
LAB = "wiz"
SUBNET = "10.124.0.0/24"
GATEWAY = "10.124.0.1"
NODES = [("cp", "10.124.0.10"), ("w1", "10.124.0.11"), ("w2", "10.124.0.12")]
FLAVOR = "labtui.machine.d20"  # labtui takes only flavors with a 20 GB disk or more
SIZE = (140, 42)
SIM_DIR = machines.SHARED_DIR / PROJECT  # this lab's SIMULATED cluster state (what its API server would hold)
STAGES = ("provision", "nodes", "cloud", "kubernetes")
STEP_TIMEOUT = 600.0
T0 = [0.0]  # when the walk started (the plan steps' timings)


@pytest.fixture
def wizard_cloud(machines_ready):
    """A project of its own (the headless tests use machines-e2e), emptied before and after."""
    from tests.machines.conftest import empty_project

    cloud = machines.ensure_project(PROJECT)
    conn = machines.project_conn(cloud)
    empty_project(conn)
    shutil.rmtree(SIM_DIR, ignore_errors=True)
    SIM_DIR.mkdir(parents=True)
    yield conn, cloud
    empty_project(conn)
    shutil.rmtree(SIM_DIR, ignore_errors=True)


@pytest.fixture
def repos():
    with aptrepo.serve(host="0.0.0.0", port=0) as srv:
        yield srv


@pytest.fixture
def wizard_env(wizard_cloud, tmp_path, monkeypatch):
    """LABTUI_HOME, HOME and a clouds.yaml with this project (and another cloud listed first, so the
    learner picks the right one)."""
    _, cloud = wizard_cloud
    adm = machines.admin_conn()
    if adm.compute.find_flavor(FLAVOR, ignore_missing=True) is None:
        adm.compute.create_flavor(name=FLAVOR, vcpus=2, ram=2048, disk=20)
    clouds = tmp_path / "clouds.yaml"
    other = {"auth": {"auth_url": "http://192.0.2.10:5000/v3", "username": "me", "password": "not-this-one",
                      "project_name": "elsewhere"}, "region_name": "RegionOne"}
    clouds.write_text(yaml.safe_dump({"clouds": {"another": other, "machines": cloud}}, sort_keys=False))
    clouds.chmod(0o600)
    home = tmp_path / "state"
    monkeypatch.setenv("LABTUI_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("LABTUI_SSH_KNOWN_HOSTS", str(tmp_path / "no_known_hosts"))
    for var in ("OS_CLOUD", "OS_AUTH_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


# --------------------------------------------------------------------------- keys, as a learner presses them


async def _type(pilot, wid: str, text: str) -> None:
    """The focused field must be `wid` (reached with tab); its text is cleared (end, ctrl+u) and `text`
    typed, or pasted when it is long (a URL, a path: the terminal's bracketed paste, as a learner does)."""
    from textual import events

    app = pilot.app
    assert app.focused is not None and app.focused.id == wid, f"focus on {getattr(app.focused, 'id', None)}, not {wid}"
    await pilot.press("end", "ctrl+u")
    if len(text) > 16:
        app.focused.post_message(events.Paste(text))
        await pilot.pause()
    else:
        await pilot.press(*text)
    assert app.focused.value == text, (wid, app.focused.value)


async def _tab_to(pilot, wid: str, limit: int = 6) -> None:
    """Tab until the focus is on `wid` (a learner tabs past the fields they leave as they are)."""
    for _ in range(limit):
        if pilot.app.focused is not None and pilot.app.focused.id == wid:
            return
        await pilot.press("tab")
    assert pilot.app.focused is not None and pilot.app.focused.id == wid, \
        f"tab never reached {wid} (focus on {getattr(pilot.app.focused, 'id', None)})"


async def _choose(pilot, wid: str, value: str) -> None:
    """Open the focused Select with enter, move to `value` with the arrows, take it with enter."""
    from textual.widgets import Select

    select = pilot.app.focused
    assert isinstance(select, Select) and select.id == wid, f"focus on {getattr(select, 'id', None)}, not {wid}"
    values = [v for _, v in select._options]
    assert value in values, (wid, values)
    here = values.index(select.value)
    await pilot.press("enter")
    await pilot.pause()
    step = "down" if values.index(value) > here else "up"
    await pilot.press(*[step] * abs(values.index(value) - here), "enter")
    await pilot.pause()
    assert select.value == value, (wid, select.value)


async def _pause_until(pilot, cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await pilot.pause(0.2)


async def _save(pilot, screen, step_id: str, nxt: str) -> None:
    """ctrl+s on an input step of the plan wizard: saved, and the wizard shows the next step."""
    assert screen.current[1].id == step_id
    print(f"  plan/{step_id}: typed at {time.monotonic() - T0[0]:.1f} s", file=sys.stderr)
    await pilot.press("ctrl+s")
    await _pause_until(pilot, lambda: screen.current[1].id == nxt and not screen._step_busy, 30,
                       f"{step_id} -> {nxt}: " + str(screen.query_one("#step-problems").render()))
    await pilot.pause(0.3)  # the next step's form is mounted, its first field focused


def _notes(app) -> str:
    return "\n".join(f"[{n.severity}] {n.message}" for n in list(app._notifications)[-8:])


def _step_list(screen) -> list[str]:
    from screens.widgets.step_item import StepItem
    from textual.widgets import Label

    return [str(item.query_one(Label).render()) for item in screen.query(StepItem)]


async def _run_stage(pilot, screen, stage: str, confirmations: list[str]) -> None:
    """ctrl+s on each step the wizard shows in this stage, `y` on each confirmation, until the stage is done."""
    from screens.modals import ConfirmModal
    from screens.modals import HostKeyModal
    from labtui.steps import StepState

    app = pilot.app
    target = next(w for w in _wizards() if w.id == stage)
    for _ in range(12):
        if screen.stage_done(target):
            return  # the wizard has moved on to the next stage by itself
        wizard, step = screen.current
        assert wizard.id == stage, f"the wizard shows {wizard.id}/{step.id}, not the {stage} stage; {_notes(app)}"
        await _pause_until(pilot, lambda: not screen._rechecking, 60, "the re-check")
        started = time.monotonic()
        await pilot.press("ctrl+s")
        assert screen._step_busy or screen.current[1] is not step, \
            f"ctrl+s did not start {stage}/{step.id}: {screen.query_one('#step-problems').render()} {_notes(app)}"
        deadline = time.monotonic() + STEP_TIMEOUT
        while screen._step_busy or app.screen is not screen:
            assert time.monotonic() < deadline, f"{stage}/{step.id} still running after {STEP_TIMEOUT:.0f} s"
            top = app.screen
            if isinstance(top, ConfirmModal):
                confirmations.append(f"{stage}/{step.id}: {top.title_text} ({len(top.lines)} change(s))")
                await pilot.press("y")
            elif isinstance(top, HostKeyModal):
                raise AssertionError(f"{stage}/{step.id} asked about a host key: the Provision stage pinned none")
            await pilot.pause(0.2)
        await pilot.pause(0.3)
        run = app.store.step_states(screen.lab.record.id, stage).get(step.id)
        state = run.state if run else None
        print(f"  {stage}/{step.id}: {state} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        assert state in (StepState.DONE.value, StepState.SKIPPED.value), (
            f"{stage}/{step.id}: {state}: {run.detail if run else ''}\n"
            f"{screen.query_one('#step-status').render()}\n{_notes(app)}")
    raise AssertionError(f"the {stage} stage is not done after 12 steps run")


def _wizards():
    from labtui.stages import available_wizards

    return available_wizards()


def _node_ssh(address: str, key: Path, command: str) -> str:
    c = machines.wait_ssh(address, key, timeout=60)
    try:
        code, out, err = machines.ssh_run(c, command)
    finally:
        c.close()
    assert code == 0, f"{address}: {command}: {code} {out} {err}"
    return out


# --------------------------------------------------------------------------- the walk


async def test_the_wizard_builds_a_cluster_on_three_real_machines(wizard_cloud, wizard_env, ssh_key, repos):
    from labtui.store import Store
    from screens.app import LabApp
    from screens.modals import ConfirmModal
    from screens.wizard import WizardScreen
    from screens.widgets.nodes_editor import NodesEditor

    conn, _ = wizard_cloud
    started = time.monotonic()
    T0[0] = started
    confirmations: list[str] = []
    app = LabApp(store=Store())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _pause_until(pilot, lambda: isinstance(app.screen, WizardScreen), 10, "the wizard")
        screen = app.screen
        await pilot.pause(0.3)

        # Plan / Lab and cloud: the name, then the cloud picked from clouds.yaml
        await _type(pilot, "f-name", LAB)
        await pilot.press("tab")
        await _choose(pilot, "f-cloud", "machines")
        await _save(pilot, screen, "lab", "machines")

        # Plan / Create or adopt: labtui creates them, on the image, flavors and external network of the test cloud
        assert screen.query_one("#f-provision_mode").value == "create"
        for wid, text in [("f-prov_image", machines.IMAGE_NAME), ("f-prov_login_user", "debian"),
                          ("f-prov_flavor_control_plane", FLAVOR), ("f-prov_flavor_worker", FLAVOR),
                          ("f-prov_external_network", machines.EXT_NET), ("f-prov_ssh_cidr", f"{GATEWAY}/32"),
                          ("f-prov_public_key_file", f"{ssh_key}.pub")]:
            await _tab_to(pilot, wid)
            await _type(pilot, wid, text)
        assert screen.query_one("#f-prov_floating_ip").value is True
        await _save(pilot, screen, "machines", "nodes")

        # Plan / Nodes: name, tab, address, enter; the first is the control plane
        await _tab_to(pilot, "node-name", limit=3)
        for name, address in NODES:
            await pilot.press(*name, "tab", *address, "enter")
            await pilot.pause()
        editor = screen.query_one(NodesEditor)
        assert [(n["name"], n["address"], n["role"]) for n in editor.nodes] == [
            ("cp", "10.124.0.10", "control-plane"), ("w1", "10.124.0.11", "worker"), ("w2", "10.124.0.12", "worker")]
        await _save(pilot, screen, "nodes", "networks")

        # Plan / Networks: the node subnet guessed from the addresses; the pod and service ranges of the headless plan
        assert screen.query_one("#f-node_subnet").value == SUBNET
        for wid, text in [("f-pod_cidr", "172.16.0.0/16"), ("f-service_cidr", "172.20.0.0/16")]:
            await _tab_to(pilot, wid)
            await _type(pilot, wid, text)
        await _save(pilot, screen, "networks", "versions")

        # Plan / Versions: this kernel has VXLAN and no IPIP module (the real-machines recipe)
        await _tab_to(pilot, "f-encapsulation")
        await _choose(pilot, "f-encapsulation", "VXLAN")
        await _save(pilot, screen, "versions", "sources")

        # Plan / Sources: apt through apt-cacher-ng on the host, the stand-in signed repositories
        sources = [("f-src_http_proxy", machines.apt_proxy_url(GATEWAY)),
                   ("f-src_kubernetes_repo", repos.kubernetes_repo(GATEWAY)),
                   ("f-src_docker_repo", repos.docker_repo(GATEWAY)),
                   ("f-src_calico_manifests", repos.calico_manifests(GATEWAY))]
        for wid, text in sources:
            await _tab_to(pilot, wid)
            await _type(pilot, wid, text)
        await pilot.pause(0.6)
        assert "✗" not in str(screen.query_one("#step-problems").render())
        await _save(pilot, screen, "sources", "review")

        # Plan / Review and save
        review = str(screen.query_one("#step-actions").render())
        assert "Machines: labtui creates them" in review and repos.kubernetes_repo(GATEWAY) in review, review
        await pilot.press("ctrl+s")
        await _pause_until(pilot, lambda: screen.current[0].id == "provision" and not screen._step_busy, 30,
                           "the plan saved and the Provision stage shown: " + _notes(app))
        plan = app.store.get_session(LAB).plan
        assert plan["cloud"] == "machines" and plan["encapsulation"] == "VXLAN" and plan["node_subnet"] == SUBNET
        assert plan["provision"]["image"] == machines.IMAGE_NAME and plan["provision"]["flavor_worker"] == FLAVOR
        assert plan["sources"]["http_proxy"] == machines.apt_proxy_url(GATEWAY)
        print(f"plan typed in and saved: {time.monotonic() - started:.0f} s", file=sys.stderr)

        # every step of the stages, as the wizard offers them: ctrl+s, y
        for stage in STAGES:
            if stage == "kubernetes":
                # this lab's SIMULATED cluster state in a directory of its own (see the module docstring)
                conf = json.dumps({"cluster_dir": f"{machines.SHARED_MOUNT}/{PROJECT}"})
                for _, address in NODES:
                    await asyncio.to_thread(_node_ssh, address, ssh_key,
                                            f"echo '{conf}' | sudo tee /etc/labtui-simulation.json")
            await _run_stage(pilot, screen, stage, confirmations)
            print(f"{stage} done: {time.monotonic() - started:.0f} s", file=sys.stderr)

        # the UI's own word: the stage heads and every step of the walked stages marked done (or skipped)
        listed = _step_list(screen)
        for w in _wizards():
            if w.id in ("plan", *STAGES):
                assert screen.stage_done(w), w.id
                for s in w.steps:
                    assert f"● {s.title}" in listed or f"– {s.title}" in listed, (w.id, s.title, listed)
        assert any(c.startswith("provision/") for c in confirmations) and any(
            c.startswith("kubernetes/") for c in confirmations), confirmations
        print("confirmed:\n  " + "\n  ".join(confirmations), file=sys.stderr)
        elapsed_build = time.monotonic() - started

        # the machines' own word
        assert sorted(s.name for s in conn.compute.servers()) == [f"labtui-{LAB}-cp", f"labtui-{LAB}-w1",
                                                                   f"labtui-{LAB}-w2"]
        for name, address in NODES:
            out = await asyncio.to_thread(
                _node_ssh, address, ssh_key,
                "dpkg-query -W -f='${Status} ${Version}\\n' containerd.io; systemctl is-active containerd; "
                "apt-mark showhold; sudo cat /etc/apt/apt.conf.d/95labtui-proxy")
            assert "install ok installed 2.1.9" in out and "\nactive\n" in out, (name, out)
            assert {"kubeadm", "kubelet", "kubectl"} <= set(out.split()), (name, out)
            assert machines.apt_proxy_url(GATEWAY) in out, (name, out)
        cluster = json.loads((SIM_DIR / "cluster.json").read_text())
        assert cluster["initialized"] and sorted(cluster["nodes"]) == ["cp", "w1", "w2"], cluster.get("nodes")

        # the wizard's teardown: ctrl+t lists what the lab created, y deletes it
        ids = [s.id for s in conn.compute.servers()]
        await pilot.press("ctrl+t")
        await _pause_until(pilot, lambda: isinstance(app.screen, ConfirmModal), 60, "the teardown's confirmation")
        assert app.screen.danger and any("server" in line for line in app.screen.lines), app.screen.lines
        await pilot.press("y")
        await _pause_until(pilot, lambda: any("torn down" in n.message or "not deleted" in n.message
                                              for n in app._notifications), 300, "the teardown")
        assert not any("not deleted" in n.message for n in app._notifications), _notes(app)

    assert list(conn.compute.servers()) == []
    assert [n for n in conn.network.networks() if n.name.startswith(f"labtui-{LAB}")] == []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(machines.machine_leftovers(i) for i in ids):
        time.sleep(1)
    assert [machines.machine_leftovers(i) for i in ids] == [[] for _ in ids]
    print(f"wizard to Kubernetes on 3 real machines: {elapsed_build:.0f} s; with teardown "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
