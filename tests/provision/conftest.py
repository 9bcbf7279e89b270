"""Fixtures for the Provision tests: a project of their own on the real OpenStack test backend.

Each test module gets its own project and member user (`prov-<module>`), so tests of other
modules never see its resources; each test starts from an empty project (everything in it is
deleted first). The admin connection makes what a cloud admin makes: flavors, the image, the
shared external network, quotas.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.harness.openstack.fixtures import openstack_stack  # noqa: F401
from tests.harness.openstack.stack import ADMIN_PASSWORD, REGION

AUTH_URL = "http://127.0.0.1:5000/v3"
IMAGE = "ubuntu-24.04-prov"
# (vCPU, RAM MB, disk GB). labtui chooses only flavors with a 20 GB disk or more (MIN_DISK_GB): the .d20 ones;
# the 1 GB ones stay for the refusals (a flavor named in the plan)
FLAVORS = {"prov.cp": (2, 2048, 1), "prov.worker": (1, 1024, 1), "prov.small": (1, 512, 1),
           "prov.cp.d20": (2, 2048, 20), "prov.worker.d20": (1, 1024, 20)}
EXT_NET = "labtui-prov-ext"
EXT_CIDR = "203.0.113.0/24"
NODE_SUBNET = "10.60.0.0/24"
NODES = [
    {"name": "cp1", "address": "10.60.0.10", "role": "control-plane"},
    {"name": "w1", "address": "10.60.0.11", "role": "worker"},
    {"name": "w2", "address": "10.60.0.12", "role": "worker"},
    {"name": "w3", "address": "10.60.0.13", "role": "worker"},
]


def _connect(**kw):
    import openstack

    return openstack.connect(load_yaml_config=False, load_envvars=False, auth_url=AUTH_URL, user_domain_name="Default", project_domain_name="Default",
                             region_name=REGION, identity_api_version="3", api_timeout=60, **kw)


def admin_conn(project: str = "admin"):
    return _connect(username="admin", password=ADMIN_PASSWORD, project_name=project)


@dataclass
class ProvCloud:
    name: str  # the clouds.yaml entry (the member user of the project)
    project: str
    project_id: str
    clouds_yaml: Path
    password: str

    def conn(self):
        return _connect(username=self.project, password=self.password, project_name=self.project)

    def admin(self):
        """The cloud admin (sees the user-data of every server)."""
        return admin_conn()


def _admin_setup(adm) -> None:
    if adm.image.find_image(IMAGE, ignore_missing=True) is None:
        import io

        adm.image.create_image(name=IMAGE, disk_format="raw", container_format="bare", visibility="public",
                               data=io.BytesIO(b"\0" * 1024), os_distro="ubuntu", os_version="24.04")
    for name, (vcpus, ram, disk) in FLAVORS.items():
        if adm.compute.find_flavor(name, ignore_missing=True) is None:
            adm.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk)
    net = adm.network.find_network(EXT_NET, ignore_missing=True)
    if net is None:
        net = adm.network.create_network(name=EXT_NET, is_router_external=True, is_shared=False)
    if not list(adm.network.subnets(network_id=net.id)):
        adm.network.create_subnet(network_id=net.id, name=EXT_NET + "-subnet", cidr=EXT_CIDR, ip_version=4,
                                  enable_dhcp=False)


def empty_project(conn) -> None:
    """Delete everything in the project (servers first, the default group stays)."""
    pid = conn.current_project_id
    import time

    for attempt in range(3):  # a delete Nova lost (e.g. while nova-compute restarted) is asked again
        servers = list(conn.compute.servers())
        if not servers:
            break
        # the member's delete of a server whose port Nova made can end in ERROR (Neutron's policy
        # refuses Nova the port's delete with the member's token): the admin deletes what is left
        deleter = conn if attempt == 0 else admin_conn()
        for s in servers:
            deleter.compute.delete_server(s.id, ignore_missing=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and list(conn.compute.servers()):
            time.sleep(0.5)
    assert not list(conn.compute.servers()), "servers of the test project would not delete"
    for ip in conn.network.ips(project_id=pid):
        conn.network.delete_ip(ip, ignore_missing=True)
    for r in conn.network.routers(project_id=pid):
        for p in conn.network.ports(device_id=r.id):
            if (p.device_owner or "").startswith("network:router_interface"):
                for f in p.fixed_ips:
                    conn.network.remove_interface_from_router(r, subnet_id=f["subnet_id"])
        conn.network.delete_router(r, ignore_missing=True)
    for p in conn.network.ports(project_id=pid):
        if not (p.device_owner or "").startswith("network:"):
            conn.network.delete_port(p, ignore_missing=True)
    for n in conn.network.networks(project_id=pid):
        conn.network.delete_network(n, ignore_missing=True)
    for g in conn.network.security_groups(project_id=pid):
        if g.name != "default":
            conn.network.delete_security_group(g, ignore_missing=True)
    for k in conn.compute.keypairs():
        conn.compute.delete_keypair(k, ignore_missing=True)


@pytest.fixture(scope="module")
def prov_cloud(openstack_stack, request, tmp_path_factory) -> ProvCloud:
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    project = f"prov-{module}"[:60]
    password = f"{project}-pw"
    adm = admin_conn()
    _admin_setup(adm)
    idn = adm.identity
    dom = idn.find_domain("Default")
    proj = idn.find_project(project, domain_id=dom.id) or idn.create_project(name=project, domain_id=dom.id)
    user = idn.find_user(project, domain_id=dom.id) or idn.create_user(name=project, password=password, domain_id=dom.id,
                                                                         default_project_id=proj.id)
    idn.assign_project_role_to_user(proj, user, idn.find_role("member"))
    path = tmp_path_factory.mktemp("prov-clouds") / "clouds.yaml"
    cloud = {"auth": {"auth_url": AUTH_URL, "username": project, "password": password, "project_name": project,
                      "user_domain_name": "Default", "project_domain_name": "Default"},
             "region_name": REGION, "identity_api_version": 3, "interface": "public"}
    path.write_text(yaml.safe_dump({"clouds": {"prov": cloud}}))
    path.chmod(0o600)
    return ProvCloud("prov", project, proj.id, path, password)


@pytest.fixture
def empty(prov_cloud: ProvCloud):
    """The module's project, emptied; its quotas at the defaults again afterwards."""
    conn = prov_cloud.conn()
    empty_project(conn)
    yield prov_cloud
    reset_quotas(prov_cloud.project_id)


def reset_quotas(project_id: str) -> None:
    adm = admin_conn()
    adm.compute.revert_quota_set(project_id)
    adm.network.delete_quota(project_id)


@pytest.fixture
def pubkey(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "labtui-test", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def plan_data(lab: str, cloud: str, pubkey: Path, **provision) -> dict:
    block = {"external_network": EXT_NET, "ssh_cidr": "198.51.100.7/32", "public_key_file": str(pubkey)}
    block.update(provision)
    return {"name": lab, "cloud": cloud, "nodes": [dict(n) for n in NODES], "node_subnet": NODE_SUBNET,
            "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16", "kubernetes": "1.36",
            "calico": "3.32.2", "encapsulation": "IPIP", "provision": block}


@pytest.fixture
def make_lab(store, empty, pubkey, monkeypatch):
    """make_lab(name="lab1", **provision) -> lab name, its plan validated by labtui's model."""
    from labtui.model import Plan

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(empty.clouds_yaml))

    def make(name: str = "lab1", nodes=None, node_subnet: str | None = None, **provision) -> str:
        data = plan_data(name, empty.name, pubkey, **provision)
        if nodes is not None:
            data["nodes"] = nodes
        if node_subnet is not None:
            data["node_subnet"] = node_subnet
        plan = Plan.parse(data).model_dump(mode="json")
        store.create_session(name, cloud=empty.name, wizard="provision", plan=plan)
        return name

    return make


@pytest.fixture
def consoles(openstack_stack):
    """Write a server's console log as the fake virt driver serves it (SIMULATED at the process
    boundary: what cloud-init would print), removed after the test."""
    d = openstack_stack.state_dir / "consoles"
    d.mkdir(exist_ok=True)
    written = []

    def write(server: str, text: str) -> None:
        (d / f"{server}.log").write_text(text)
        written.append(d / f"{server}.log")

    yield write
    for p in written:
        p.unlink(missing_ok=True)


@pytest.fixture
def labtui(capsys):
    from labtui.cli import main

    def run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(autouse=True)
def short_host_key_wait(monkeypatch):
    """The fake virt driver's console never gets cloud-init's fingerprints unless a test writes them: the
    Host keys step's wait for them (10 minutes on a real cloud) is cut to a few seconds here; a test of
    the wait sets its own."""
    import labtui.stages.provision.host_keys as prov

    monkeypatch.setattr(prov, "HOST_KEY_WAIT", 3.0)
    monkeypatch.setattr(prov, "HOST_KEY_POLL", 0.5)
