"""The kubeconfig labtui writes for you (audit F13): with a floating IP on the control plane and the
group's 6443 from your SSH source, its server is https://<floating IP>:6443; without them, it is
admin.conf as it is, and labtui says which `ssh -L` tunnel reaches the API."""

from __future__ import annotations

import yaml

from labtui.model import Plan
from labtui.paths import session_dir
from labtui.session import LabSession

ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.60.0.10:6443
  name: kubernetes
contexts:
- context: {cluster: kubernetes, user: kubernetes-admin}
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def _lab(store, name: str, *, fip: str | None, api_cidr: str | None):
    nodes = [{"name": "cp1", "address": "10.60.0.10", "role": "control-plane", "user": "ubuntu"},
             {"name": "w1", "address": "10.60.0.11", "role": "worker", "user": "ubuntu"}]
    if fip:
        nodes[0]["ssh_host"] = fip
        nodes[1]["proxy_jump"] = f"ubuntu@{fip}"
    plan = Plan.parse({"name": name, "cloud": "prov", "nodes": nodes, "node_subnet": "10.60.0.0/24",
                       "provision": {"external_network": "public"}}).model_dump(mode="json")
    rec = store.create_session(name, cloud="prov", plan=plan)
    if fip:
        store.put_facts(rec.id, "provision", {"way_in": {"floating_ip": fip, "proxy_jump": f"ubuntu@{fip}",
                                                         **({"api_cidr": api_cidr} if api_cidr else {})}})
    (session_dir(name, store.home) / "admin.conf").write_text(ADMIN_CONF)


def _events(lab):
    seen = []
    lab.ctx.emit = seen.append
    return seen


def test_with_a_floating_ip_and_6443_from_you_the_server_is_the_floating_ip(store, tmp_path):
    from labtui.stages.kubernetes import write_user_kubeconfig

    _lab(store, "fip", fip="203.0.113.50", api_cidr="198.51.100.7/32")
    with LabSession(store, "fip") as lab:
        seen = _events(lab)
        out = write_user_kubeconfig(lab.ctx, str(tmp_path / "kube" / "config"))
    conf = yaml.safe_load(open(out).read())
    assert conf["clusters"][0]["cluster"]["server"] == "https://203.0.113.50:6443"
    assert conf["users"] == yaml.safe_load(ADMIN_CONF)["users"]  # the credentials are admin.conf's
    assert (tmp_path / "kube" / "config").stat().st_mode & 0o777 == 0o600
    text = "\n".join(e.message for e in seen)
    assert "https://203.0.113.50:6443" in text and "198.51.100.7/32" in text


def test_without_the_api_rule_it_says_which_tunnel_to_open(store, tmp_path):
    from labtui.stages.kubernetes import write_user_kubeconfig

    _lab(store, "old", fip="203.0.113.51", api_cidr=None)  # provisioned before the 6443 rule existed
    with LabSession(store, "old") as lab:
        seen = _events(lab)
        out = write_user_kubeconfig(lab.ctx, str(tmp_path / "config"))
    assert open(out).read() == ADMIN_CONF  # unchanged: the fixed IP
    text = "\n".join(e.message for e in seen)
    assert "ssh -N -L 6443:10.60.0.10:6443 ubuntu@203.0.113.51" in text
    assert "--server https://127.0.0.1:6443 --tls-server-name kubernetes" in text


def test_a_routed_node_subnet_keeps_admin_conf(store, tmp_path):
    from labtui.stages.kubernetes import write_user_kubeconfig

    _lab(store, "routed", fip=None, api_cidr=None)
    with LabSession(store, "routed") as lab:
        seen = _events(lab)
        out = write_user_kubeconfig(lab.ctx, str(tmp_path / "config"))
    assert open(out).read() == ADMIN_CONF
    assert "ssh -N -L" not in "\n".join(e.message for e in seen)
