"""The lab's network (network, subnet, router), its security group with the rules the plan needs,
and its keypair: catalogue Actions (`cloud.*` kinds) the executor runs and records."""

from __future__ import annotations

import shlex
from dataclasses import asdict

from labtui.changes.cloud import resource_action
from labtui.net.fixes import lab_rule_fix
from labtui.provision_plan import DESCRIPTION, RuleSpec, rules_for
from labtui.stages.provision.common import ActionsStep, lab_names, lab_tag_of, requirements
from labtui.stages.provision.offer import choices
from labtui.steps import Action, Risk, StepContext


def network_actions(ctx: StepContext) -> list[Action]:
    ch = choices(ctx)
    plan = ctx.plan
    if ch["network"]["existing"] or plan is None:
        return []
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    cidr = plan.node_subnet
    dns = list(ch.get("dns_nameservers") or [])  # Neutron's subnet attribute dns_nameservers (audit F10)
    q = shlex.quote
    acts = [
        resource_action("network", lab=lab, tag=tag, name=n.network, title=f"create network {n.network}",
                        command=f"openstack network create --description {q(desc)} --tag {q(tag)} {n.network}",
                        attrs={"name": n.network, "description": desc}),
        resource_action("subnet", lab=lab, tag=tag, name=n.subnet, title=f"create subnet {n.subnet} ({cidr})",
                        command=(f"openstack subnet create --network {n.network} --subnet-range {cidr} "
                                 + "".join(f"--dns-nameserver {q(d)} " for d in dns)
                                 + f"--description {q(desc)} --tag {q(tag)} {n.subnet}"),
                        attrs={"name": n.subnet, "description": desc, "cidr": cidr, "ip_version": 4,
                               **({"dns_nameservers": dns} if dns else {})},
                        refs={"network_id": ["network", n.network]}),
    ]
    ext = ch["external"]
    if ext:
        router = resource_action(
            "router", lab=lab, tag=tag, name=n.router, title=f"create router {n.router} to {ext['name']}",
            command=(f"openstack router create --external-gateway {q(ext['name'])} --description {q(desc)} "
                     f"--tag {q(tag)} {n.router}"),
            attrs={"name": n.router, "description": desc, "external_gateway_info": {"network_id": ext["id"]}})
        acts[0].together = router.together = "network+router"  # neither needs the other: made together
        acts.insert(1, router)
        acts.append(Action(id=f"router-interface:{n.router}", title=f"connect {n.subnet} to {n.router}",
                           command=f"openstack router add subnet {n.router} {n.subnet}", kind="openstack",
                           target=n.router, risk=Risk.CHANGE, change="cloud.router-interface",
                           api=f"PUT /v2.0/routers/<id of {n.router}>/add_router_interface "
                               f"{{\"subnet_id\": \"<id of {n.subnet}>\"}}",
                           revert=f"openstack router remove subnet {n.router} {n.subnet}",
                           data={"lab": lab, "tag": tag, "router": n.router, "subnet": n.subnet}))
    return acts


def rule_specs(ctx: StepContext) -> list[RuleSpec]:
    ch = choices(ctx)
    plan = ctx.plan
    specs = rules_for(requirements(ctx), ch["ssh_cidr"], plan.pod_cidr if plan else None)
    if ch["floating_ip"]:
        specs.append(api_rule(ch["ssh_cidr"]))
    return specs


def api_rule(cidr: str) -> RuleSpec:
    """TCP 6443 from your machine (the SSH source) to the control plane's floating IP: the kubeconfig labtui
    writes for you then talks to https://<floating IP>:6443 (audit F13; the certificate names the floating
    IP: the Kubernetes stage adds it to the API server's certSANs)."""
    return RuleSpec("apiserver-from-you", "kubectl on your machine reaches the API server at the control plane's "
                    "floating IP", "tcp", 6443, 6443, "cidr", cidr)


def group_actions(ctx: StepContext) -> list[Action]:
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    acts = [resource_action("security-group", lab=lab, tag=tag, name=n.group, title=f"create security group {n.group}",
                            command=f"openstack security group create --description {shlex.quote(desc)} "
                                    f"--tag {shlex.quote(tag)} {n.group}",
                            attrs={"name": n.group, "description": desc})]
    for r in rule_specs(ctx):
        fix = lab_rule_fix(r, f"<id of {n.group}>", n.group)  # the group's id is known once it exists
        a = Action(id=f"sg-rule:{r.key}", title=f"{n.group}: allow {r.what} from "
                   f"{'the group itself' if r.remote == 'group' else r.cidr} ({r.requirement})",
                   command=fix.command(), kind="openstack", target=n.group, risk=Risk.CHANGE,
                   change="cloud.sg-rule", api=fix.api(), revert=fix.revert_command(),
                   data={"lab": lab, "tag": tag, "group": n.group, "rule": asdict(r), "why": r.reason},
                   together=f"rules:{n.group}")  # the rules of one group do not depend on each other
        acts.append(a)
    return acts


def keypair_actions(ctx: StepContext) -> list[Action]:
    ch = choices(ctx)
    kp = ch["keypair"]
    if kp["existing"]:
        return []
    lab, tag = ctx.session.name, lab_tag_of(ctx)
    return [resource_action("keypair", lab=lab, tag=tag, name=kp["name"],
                            title=f"import your public key {kp['file']} as keypair {kp['name']}",
                            command=f"openstack keypair create --public-key {kp['file']} {kp['name']}",
                            attrs={"name": kp["name"], "public_key": kp["public_key"]})]


class NetworkStep(ActionsStep):
    id = "network"
    title = "Network"
    why = (
        "The nodes need one subnet: an existing tenant network whose subnet is the plan's node subnet,\n"
        "or a new network and subnet with the plan's node subnet and, when you chose an external\n"
        "network, a router to it (for the floating IP). Everything labtui creates carries the lab's tag."
    )

    def actions(self, ctx: StepContext) -> list[Action]:
        return network_actions(ctx)

    def nothing(self, ctx: StepContext) -> str:
        ch = choices(ctx)
        return f"uses the existing network {ch['network']['name']}"


class GroupStep(ActionsStep):
    id = "security-group"
    title = "Security group"
    why = (
        "A group of the lab's own, labtui-<lab>, with the rules the plan needs, derived by the same engine\n"
        "the cloud check uses: kubeadm's ports by role, IP protocol 4 (written \"4\", never \"ipip\") or\n"
        "UDP 4789 from the group itself for the encapsulation, TCP 179 for BGP, and SSH 22 from your\n"
        "address. Each rule is shown with its reason."
    )

    def actions(self, ctx: StepContext) -> list[Action]:
        return group_actions(ctx)


class KeypairStep(ActionsStep):
    id = "keypair"
    title = "Keypair"
    why = (
        "The servers let you (and labtui) in with your SSH key: an existing keypair of the project, or\n"
        "your public key (~/.ssh/id_ed25519.pub by default) imported. Only the public key leaves your\n"
        "machine; labtui never creates or stores a private key."
    )

    def actions(self, ctx: StepContext) -> list[Action]:
        return keypair_actions(ctx)

    def nothing(self, ctx: StepContext) -> str:
        return f"uses the existing keypair {choices(ctx)['keypair']['name']}"
