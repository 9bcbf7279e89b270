"""Fixtures for the Kubernetes / Calico tests: started test API servers and labs pointing at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.kube import FakeCluster, incident_cluster, operator_cluster, v3_cluster


@pytest.fixture
def incident():
    with incident_cluster() as c:
        yield c


@pytest.fixture
def operator():
    with operator_cluster() as c:
        yield c


@pytest.fixture
def v3():
    with v3_cluster() as c:
        yield c


@pytest.fixture
def kubeconfig_for(tmp_path: Path):
    count = iter(range(1000))

    def make(cluster: FakeCluster, token: str = "admin-token", **kw) -> Path:
        return cluster.write_kubeconfig(tmp_path / f"kubeconfig-{next(count)}", token, **kw)
    return make


@pytest.fixture
def make_lab(store):
    """make_lab(name, kubeconfig=..., plan=..., shell=...) -> (LabSession, events list)."""
    from labtui.session import LabSession

    opened = []

    def make(name: str = "lab", *, kubeconfig: Path | None = None, plan: dict | None = None, shell=None,
             forwarder=None):
        if not store.has_session(name):
            store.create_session(name, wizard="calico")
        if kubeconfig is not None:
            store.save_inputs(name, {"kubeconfig": str(kubeconfig)})
        if plan is not None:
            store.update_session(name, plan=plan)
        events: list = []
        lab = LabSession(store, name, emit=events.append)
        if shell is not None:
            lab.ctx.tuning.kube_shell_factory = lambda ctx: shell
        if forwarder is not None:
            lab.ctx.tuning.kube_forwarder_factory = lambda ctx: forwarder
        opened.append(lab)
        return lab, events

    yield make
    for lab in opened:
        lab.close()
