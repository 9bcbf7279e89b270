"""The glossary of the terms a learner meets on screen (F1 on a step shows the ones it uses).

Plain words, one short paragraph each: what the thing is and what it does to a pod's packet."""

from __future__ import annotations

GLOSSARY: dict[str, str] = {
    "IPIP": "IP-in-IP (IP protocol number 4). Calico wraps a pod's packet in a second IP header whose source "
            "and destination are the two nodes' own addresses, so the network between the nodes only ever "
            "sees node addresses. The cloud must let IP protocol 4 through between the nodes.",
    "VXLAN": "Calico wraps a pod's packet (with its Ethernet header) in a UDP packet on port 4789 between the "
             "two nodes' own addresses. Like IPIP it hides pod addresses from the network; the cloud must let "
             "UDP 4789 through between the nodes.",
    "CrossSubnet": "A Calico mode that encapsulates only between nodes on different subnets and sends packets "
                   "unwrapped (source = the pod's IP) between nodes on the same subnet. On one OpenStack subnet "
                   "that means every pod packet leaves with a pod source, which anti-spoofing drops.",
    "anti-spoofing": "OpenStack Neutron's port security: a VM port may only send packets whose source IP and MAC "
                     "are the port's own (or an allowed-address-pair). Anything else, such as a pod's packet sent "
                     "unwrapped, is dropped on the hypervisor before it reaches the other node.",
    "allowed-address-pairs": "Extra source addresses (or a CIDR) a Neutron port may send from. Adding the pod "
                             "CIDR to every node port lets unwrapped pod packets pass anti-spoofing. The API "
                             "replaces the whole list, so labtui merges it.",
    "security group": "A set of firewall rules attached to a Neutron port. Traffic a rule does not allow is "
                      "dropped. Rules can allow traffic from another group (every port in it), e.g. IP protocol 4 "
                      "from the nodes' own group.",
    "pod CIDR": "The address range Calico hands out to pods (kubeadm --pod-network-cidr, Calico's IP pool), "
                "e.g. 172.16.0.0/16. It must not overlap the node subnet or the service CIDR.",
    "service CIDR": "The range of ClusterIP addresses for Kubernetes Services (kubeadm --service-cidr). kube-proxy "
                    "translates them; they never appear on the wire between nodes.",
    "node subnet": "The subnet the VMs' ports are on, e.g. 10.100.200.0/24. Nodes on one subnet reach each other "
                   "directly; their packets must carry their own addresses to pass anti-spoofing.",
    "IP pool": "Calico's record of a pod address range and how to send its traffic between nodes: ipipMode "
               "(Never, CrossSubnet, Always) and vxlanMode (the same three).",
    "kubeconfig": "The file kubectl and labtui use to reach a cluster's API: its address, its CA and your "
                  "credentials. kubeadm writes the admin one to /etc/kubernetes/admin.conf on the control plane.",
    "host key": "The SSH server's own key. Its SHA256 fingerprint proves you reached the machine you meant; "
                "a changed key means a rebuilt VM, or someone in the middle.",
    "preflight": "The checks kubeadm makes before it installs (swap off, forwarding on, modules loaded, enough "
                 "CPU and memory). labtui makes them first and explains each one.",
    "floating IP": "A public address of the cloud's external network, mapped by the router to one VM's port. "
                   "labtui puts one on the control plane and reaches the other nodes through it (a jump host).",
    "jump host": "A machine SSH goes through to reach nodes that have no address you can reach (ProxyJump): "
                 "labtui opens the connection to the node inside the one to the jump host.",
    "BGP": "The routing protocol Calico's bird uses to tell the other nodes which pod blocks live where; it needs "
           "TCP 179 between the nodes.",
}

_ALIASES = {k.lower(): k for k in GLOSSARY}


def terms_in(*texts: str) -> list[str]:
    """The glossary terms that appear in the texts (case-insensitive), in glossary order."""
    blob = " ".join(t for t in texts if t).lower()
    return [k for k in GLOSSARY if k.lower() in blob]


def explain(terms: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for t in terms:
        key = _ALIASES.get(t.lower())
        if key and key not in [o[0] for o in out]:
            out.append((key, GLOSSARY[key]))
    return out
