"""Doctor facts for the scenarios of issue 6, built by hand (no I/O): the incident and its variants."""

from __future__ import annotations

from labtui.doctor.model import Calico, DoctorFacts, Node
from labtui.net.calico import OPERATOR, IPPoolInfo
from labtui.net.model import NodePort, SecurityGroup, SGRule

SG = "5f0c2d1e-0000-4000-8000-00000000000a"
NAMES = ["k8s-cp", "k8s-w1", "k8s-w2", "k8s-w3"]
# the incident's addresses: 10.100.200.4 and .21 appear in its tcpdump
ADDRS = ["10.100.200.4", "10.100.200.21", "10.100.200.22", "10.100.200.23"]


def base_rules(group: str = SG) -> list[SGRule]:
    """A typical hand-made node group: SSH and the Kubernetes ports, BGP from the group, egress open,
    but no protocol 4 and nothing for pod addresses (the incident's group)."""
    return [
        SGRule("r-egress", group, "egress", "IPv4", None),
        SGRule("r-ssh", group, "ingress", "IPv4", "tcp", 22, 22, remote_ip_prefix="0.0.0.0/0"),
        SGRule("r-api", group, "ingress", "IPv4", "tcp", 6443, 6443, remote_ip_prefix="0.0.0.0/0"),
        SGRule("r-kubelet", group, "ingress", "IPv4", "tcp", 10250, 10250, remote_group_id=group),
        SGRule("r-etcd", group, "ingress", "IPv4", "tcp", 2379, 2380, remote_group_id=group),
        SGRule("r-bgp", group, "ingress", "IPv4", "tcp", 179, 179, remote_group_id=group),
        SGRule("r-icmp", group, "ingress", "IPv4", "icmp", remote_group_id=group),
    ]


def incident(ipip="CrossSubnet", vxlan="Never", subnets=None, rules=None, port_security=True,
             pairs=None, operator=False, backend="bird", n=4) -> DoctorFacts:
    subnets = subnets or ["10.100.200.0/24"] * n
    nodes = []
    for i in range(n):
        sub = subnets[i]
        if sub == "10.100.200.0/24":
            addr = ADDRS[i]
        else:
            base = sub.split("/")[0].rsplit(".", 1)[0]
            addr = f"{base}.{10 + i}"
        prefix = sub.split("/")[1]
        port = NodePort(id=f"port-{i}-0000-4000-8000-000000000000", name=f"{NAMES[i]}-port",
                        fixed_ips=[{"ip_address": addr, "subnet_id": "lab-subnet-id"}], subnet_id="lab-subnet-id",
                        subnet_cidr=sub, subnet_name="lab-subnet", network_id="lab-net-id", network_name="lab-net",
                        mac_address=f"fa:16:3e:00:00:0{i}", security_group_ids=[SG] if port_security else [],
                        port_security_enabled=port_security,
                        allowed_address_pairs=[{"ip_address": a} for a in (pairs or {}).get(i, [])])
        nodes.append(Node(name=NAMES[i], role="control-plane" if i == 0 else "worker", address=addr, iface="ens3",
                          iface_cidr=f"{addr}/{prefix}", calico_cidr=f"{addr}/{prefix}", port=port,
                          ipip_module=True, k8s_ready=True, calico_ready=True, calico_restarts=0,
                          calico_pod=f"calico-node-{i}"))
    pool = IPPoolInfo("default-ipv4-ippool", "172.16.0.0/16", ipip, vxlan, True, owner=OPERATOR if operator else None,
                      installation_index=0 if operator else None)
    return DoctorFacts(
        cluster="incident", cloud="lab", nodes=nodes,
        groups={SG: SecurityGroup(SG, "k8s", rules if rules is not None else base_rules(), stateful=True)},
        pools=[pool],
        calico=Calico(install_mode="operator" if operator else "manifest", backend=backend,
                      bgp=backend == "bird", typha=operator, version="v3.32.1", api="v3" if operator else "crd"),
        sources={"cloud": True, "kube": True, "ssh": True})


def with_rule(facts: DoctorFacts, rule: SGRule) -> DoctorFacts:
    facts.groups[SG].rules.append(rule)
    return facts


PROTO4 = SGRule("r-ipip", SG, "ingress", "IPv4", "4", remote_group_id=SG)
VXLAN4789 = SGRule("r-vxlan", SG, "ingress", "IPv4", "udp", 4789, 4789, remote_group_id=SG)
