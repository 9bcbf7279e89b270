"""Doctor facts for the scenarios of issue 6, built by hand (no I/O): the incident and its variants."""

from __future__ import annotations

from labtui.doctor.reason import Calico, DoctorFacts, Group, Node, Pool, Port, Rule

SG = "5f0c2d1e-0000-4000-8000-00000000000a"
NAMES = ["k8s-cp", "k8s-w1", "k8s-w2", "k8s-w3"]
# the incident's addresses: 10.100.200.4 and .21 appear in its tcpdump
ADDRS = ["10.100.200.4", "10.100.200.21", "10.100.200.22", "10.100.200.23"]


def base_rules(group: str = SG) -> list[Rule]:
    """A typical hand-made node group: SSH and the Kubernetes ports, BGP from the group, egress open,
    but no protocol 4 and nothing for pod addresses (the incident's group)."""
    return [
        Rule("r-egress", "egress", "IPv4", None),
        Rule("r-ssh", "ingress", "IPv4", "tcp", 22, 22, remote_ip_prefix="0.0.0.0/0"),
        Rule("r-api", "ingress", "IPv4", "tcp", 6443, 6443, remote_ip_prefix="0.0.0.0/0"),
        Rule("r-kubelet", "ingress", "IPv4", "tcp", 10250, 10250, remote_group_id=group),
        Rule("r-etcd", "ingress", "IPv4", "tcp", 2379, 2380, remote_group_id=group),
        Rule("r-bgp", "ingress", "IPv4", "tcp", 179, 179, remote_group_id=group),
        Rule("r-icmp", "ingress", "IPv4", "icmp", remote_group_id=group),
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
        port = Port(id=f"port-{i}-0000-4000-8000-000000000000", name=f"{NAMES[i]}-port", fixed_ips=[addr],
                    subnet_cidr=sub, subnet_name="lab-subnet", network="lab-net", mac=f"fa:16:3e:00:00:0{i}",
                    security_groups=[SG] if port_security else [], port_security=port_security,
                    allowed_address_pairs=list((pairs or {}).get(i, [])))
        nodes.append(Node(name=NAMES[i], role="control-plane" if i == 0 else "worker", address=addr, iface="ens3",
                          iface_cidr=f"{addr}/{prefix}", calico_cidr=f"{addr}/{prefix}", port=port,
                          ipip_module=True, k8s_ready=True, calico_ready=True, calico_restarts=0,
                          calico_pod=f"calico-node-{i}"))
    pool = Pool("default-ipv4-ippool", "172.16.0.0/16", ipip, vxlan, True, managed_by_operator=operator,
                installation_index=0 if operator else None)
    return DoctorFacts(
        cluster="incident", cloud="lab", nodes=nodes,
        groups={SG: Group(SG, "k8s", rules if rules is not None else base_rules())},
        pools=[pool],
        calico=Calico(install_mode="operator" if operator else "manifest", backend=backend,
                      bgp=backend == "bird", typha=operator, version="v3.32.1", api="v3" if operator else "crd"),
        sources={"cloud": True, "kube": True, "ssh": True})


def with_rule(facts: DoctorFacts, rule: Rule) -> DoctorFacts:
    facts.groups[SG].rules.append(rule)
    return facts


PROTO4 = Rule("r-ipip", "ingress", "IPv4", "4", remote_group_id=SG)
VXLAN4789 = Rule("r-vxlan", "ingress", "IPv4", "udp", 4789, 4789, remote_group_id=SG)
