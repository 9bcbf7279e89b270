"""Cluster build tests: pure logic (test_build_logic), and the Kubernetes stage end to end on real
sshd nodes with the SIMULATED cluster tools on their PATH (test_*_simulated: root only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NODE_NAMES = ["kcp", "kw1", "kw2", "kw3"]


@pytest.fixture(scope="module")
def kubelab():
    """Four real sshd nodes (kcp + 3 workers), shared by a module's tests; `fresh_nodes` resets them."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(4, names=NODE_NAMES) as lab:
        yield lab


def reset_nodes(lab, **scenario):
    """Fresh machines: each sshd restarted (a new private /tmp and /etc overlay), the simulated
    tools installed with `scenario`, the shared cluster state emptied."""
    from tests.cluster.simulation import tools

    for node in lab.nodes:
        lab.restart_node(node)
    tools.install(lab, **scenario)
    return lab


@pytest.fixture
def fresh_nodes(kubelab):
    return reset_nodes(kubelab)


@pytest.fixture
def open_lab(store):
    """open_lab(lab, name="k8s", confirm=None, **plan overrides) -> (LabSession, events)."""
    from labtui.session import LabSession

    opened = []

    def make(lab, name="k8s", *, confirm=None, **overrides):
        plan = lab.plan_data(name)
        plan.update({"kubernetes": "1.36", "encapsulation": "IPIP"}, **overrides)
        if not store.has_session(name):
            store.create_session(name, cloud=None, wizard="kubernetes", plan=plan)
        events = []
        lab_session = LabSession(store, name, emit=events.append, confirm=confirm or (lambda actions: True))
        lab_session.ctx.tuning.calico_wait = 10.0
        lab_session.ctx.tuning.calico_poll = 0.1
        from labtui.adapters.ssh import configure_session_ssh

        configure_session_ssh(lab_session.ctx, user_known_hosts=[lab.known_hosts], headless=True, connect_timeout=5.0,
                              look_for_keys=False)
        opened.append(lab_session)
        return lab_session, events

    yield make
    for s in opened:
        s.close()


def run_stage(lab_session, wizard_id: str, until: str | None = None):
    """Run a stage's steps in order through the Runner, stopping at the first step not done."""
    from labtui.stages import wizard_for
    from labtui.steps import StepState

    wizard = wizard_for(wizard_id)
    runner = lab_session.runner(wizard)
    outcomes = []
    for step in wizard.steps:
        out = runner.run_step(step)
        outcomes.append(out)
        if out.state not in (StepState.DONE, StepState.SKIPPED) or step.id == until:
            break
    return outcomes


def all_text(store, lab_home: Path, events) -> str:
    """Everything labtui stored, logged or emitted: the database file, the log file, the events."""
    parts = []
    for p in lab_home.rglob("*"):
        if p.is_file() and p.name != "admin.conf":
            parts.append(p.read_bytes().decode("utf-8", errors="replace"))
    parts += [f"{e.kind} {e.message} {e.data}" for e in events]
    return "\n".join(parts)
