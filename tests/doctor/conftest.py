"""Doctor tests: pure reasoning on facts (test_doctor_*), gatherers and end-to-end runs on the real
test backends (e2e_*: sshd nodes, OpenStack, kmock)."""

import os

import pytest

from tests.harness.openstack.fixtures import incident, incident_layout, openstack_stack  # noqa: F401


@pytest.fixture
def labtui_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("LABTUI_HOME", str(home))
    return home


def pytest_collect_file(file_path, parent):
    """Collect the end-to-end tests named e2e_*.py (issue 6 names them so)."""
    if file_path.suffix == ".py" and file_path.name.startswith("e2e_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


# distinct from the cloud harness's incident servers (cp1, w1, w2, w3): Nova finds servers by name
NODE_NAMES = ["dcp", "dw1", "dw2", "dw3"]


@pytest.fixture(scope="session")
def sshlab():
    """Four real sshd nodes (dcp + 3 workers) in network namespaces, shared by the doctor's e2e tests."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, sshd)")
    from tests.harness.sshnodes import SSHNodes

    with SSHNodes(4, names=NODE_NAMES) as lab:
        yield lab


@pytest.fixture
def kube_nodes(sshlab):
    """(name, address, control plane) of the SSH nodes, for the test API server's Node objects."""
    return [(n.name, n.address, i == 0) for i, n in enumerate(sshlab.nodes)]


@pytest.fixture
def open_lab(store, tmp_path):
    """open_lab(name, plan=..., kubeconfig=..., cloud=...) -> (LabSession, events)."""
    from labtui.session import LabSession

    opened = []

    def make(name="lab", *, plan=None, kubeconfig=None, cloud=None, confirm=None, known_hosts=None):
        if not store.has_session(name):
            store.create_session(name, cloud=cloud, wizard="doctor", plan=plan or {})
        inputs = {}
        if kubeconfig is not None:
            inputs["kubeconfig"] = str(kubeconfig)
        if cloud is not None:
            inputs["cloud"] = cloud
        if inputs:
            store.save_inputs(name, inputs)
        events = []
        lab = LabSession(store, name, emit=events.append, confirm=confirm)
        lab.ctx.tuning.simulated = True
        lab.ctx.tuning.calico_poll = 0.1
        if known_hosts is not None:
            from labtui.adapters.ssh import configure_session_ssh

            configure_session_ssh(lab.ctx, user_known_hosts=[known_hosts], headless=True, connect_timeout=5.0)
        opened.append(lab)
        return lab, events

    yield make
    for lab in opened:
        lab.close()


@pytest.fixture(scope="session")
def doctor_layout(openstack_stack, sshlab):
    """The incident's layout on the test cloud for the sshd nodes: servers dcp, dw1, dw2, dw3 whose
    Neutron ports carry the sshd nodes' own addresses, group `doctor-k8s` (no protocol 4)."""
    from tests.harness.openstack import CLOUD_ADMIN, build_incident_layout, connect

    nodes = tuple((n.name, n.address, "control-plane" if i == 0 else "worker") for i, n in enumerate(sshlab.nodes))
    return build_incident_layout(connect(CLOUD_ADMIN), cloud=CLOUD_ADMIN, name="doctor", sg_name="doctor-k8s",
                                 subnet_cidr=str(sshlab.subnet), nodes=nodes)


@pytest.fixture
def layout(doctor_layout, openstack_stack, lab_home, monkeypatch):
    """The doctor layout reset to the incident's state; clouds.yaml of the test cloud in the env."""
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(openstack_stack.clouds_yaml))
    return doctor_layout.reset()


@pytest.fixture
def cloud_env(openstack_stack, lab_home, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(openstack_stack.clouds_yaml))
    return openstack_stack
