"""The Provision stage: from an OpenStack project to the lab's machines (between Plan and Nodes).

When it applies: the plan has a cloud AND a `provision` block (labtui.model.ProvisionSpec).
A plan without one adopts machines that exist already; every step is then skipped with that
reason. The plan's node addresses are the fixed IPs the servers' ports get on the node subnet,
so the Nodes and Cloud stages find the servers by address with nothing rewritten.

Steps: what the cloud offers -> quotas (and name clashes) first -> network -> security group
(rules from the same requirements engine as the cloud check) -> keypair -> machines (in
parallel, BUILD -> ACTIVE per server) -> host keys from the console. Each resource is a
`cloud.*` change kind (labtui.changes.cloud) run by the executor and recorded with its delete;
labtui.stages.teardown deletes exactly what the lab created.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

from labtui import events as ev
from labtui.errors import LabError
from labtui.events import Event
from labtui.steps import Action, CheckResult, Risk, Step, StepContext, Wizard

SCOPE = "provision"
FIELD = "Provision"  # how the plan's block is named on screen


# ----------------------------------------------------------------------------- what the plan asks


def spec(ctx: StepContext) -> dict[str, Any] | None:
    return (ctx.session.plan or {}).get("provision")


def skip_reason(ctx: StepContext) -> str | None:
    plan = ctx.session.plan or {}
    if not plan:
        return "the plan is not saved yet"
    if not plan.get("cloud"):
        return "the lab adopts machines you already have (no cloud in the plan)"
    if plan.get("provision") is None:
        return ("the lab adopts existing machines of the cloud (the plan has no provision block); "
                "the Cloud stage finds them by name or address")
    return None


def lab_names(ctx: StepContext):
    from labtui.provision_plan import Names

    return Names(ctx.session.name)


def lab_tag_of(ctx: StepContext) -> str:
    from labtui.provision_plan import lab_tag

    return lab_tag(ctx.session.name)


def _conn(ctx: StepContext):
    from labtui.stages.cloud import service

    return service(ctx)


def requirements(ctx: StepContext) -> list:
    """What the network must carry, from the same engine as the cloud check."""
    from labtui.net.check import NodeRef, derive_requirements
    from labtui.stages.cloud import networking

    plan = ctx.session.plan or {}
    subnet = plan.get("node_subnet")
    refs = [NodeRef(n["name"], str(n.get("role") or "worker"), n.get("address"), subnet) for n in plan.get("nodes") or []]
    return derive_requirements(networking(ctx), refs)


def _bad(field: str, message: str, hint: str, code: str = "invalid") -> LabError:
    """A problem with one of the plan's provision inputs (named as on screen). `input_field` tells a
    dry run it is the plan's input, to be named once, not a step that cannot be checked yet."""
    err = LabError(f"{FIELD}: {field}: {message}", hint, code=code)
    err.input_field = field  # type: ignore[attr-defined]
    return err


def choices(ctx: StepContext) -> dict[str, Any]:
    """Read what the cloud offers and decide image, login, flavors, network, SSH source and key.
    Raises LabError naming the plan field and what to do. Cached for the run."""
    cached = getattr(ctx.memo, "provision_choices", None)
    if cached is not None:
        return cached
    from labtui.adapters import provision as p
    from labtui.provision_plan import (choose_flavor, flavor_disk_problem, flavor_problem, guess_login_user,
                                       nat_warning, no_flavor_reason, ssh_cidr_problem, supports_packages,
                                       usable_images)

    s = spec(ctx) or {}
    plan = ctx.session.plan or {}
    # the plan's own inputs first: a public key file that cannot be read is said before the cloud is read
    public_key = None if s.get("keypair") else _public_key(s)
    c = _conn(ctx)
    run = ctx.memo.bucket("provision")
    if "offer" not in run:  # read once per run, whatever the steps that ask (a refused input included)
        run["offer"] = p.offer(c)
    offer = run["offer"]
    out: dict[str, Any] = {"warnings": []}
    # image
    images = usable_images(offer["images"])
    if s.get("image"):
        img = next((i for i in images if s["image"] in (i.id, i.name)), None)
        if img is None:
            raise _bad("Image", f"cloud {c.name} has no active image named {s['image']!r}",
                       "choose one of: " + (", ".join(i.name for i in images[:8]) or "(none: upload an Ubuntu "
                                            "24.04 cloud image first)"), "no-image")
    else:
        img = images[0] if images else None
        if img is None or img.distro not in ("ubuntu", "debian"):
            raise _bad("Image", f"cloud {c.name} has no Ubuntu 24.04 / 22.04 or Debian 12 image"
                       + (f" (it has: {', '.join(i.name for i in images[:6])})" if images else " (no active image)"),
                       "upload an Ubuntu cloud image (openstack image create --disk-format qcow2 --file "
                       "noble-server-cloudimg-amd64.img ubuntu-24.04), or name one in the plan (provision.image)",
                       "no-image")
    out["image"] = {"id": img.id, "name": img.name, "label": img.label, "packages": supports_packages(img)}
    out["login_user"] = s.get("login_user") or guess_login_user(img)
    out["images"] = [i.label for i in images]
    # flavors
    for role, key in (("control-plane", "flavor_control_plane"), ("worker", "flavor_worker")):
        if s.get(key):
            fl = next((f for f in offer["flavors"] if s[key] in (f.id, f.name)), None)
            if fl is None:
                raise _bad(f"Flavor ({role})", f"cloud {c.name} has no flavor {s[key]!r}",
                           "choose one of: " + ", ".join(f.label for f in sorted(offer["flavors"], key=lambda f: (f.vcpus, f.ram))[:8]),
                           "no-flavor")
            problem = flavor_problem(fl, role) or flavor_disk_problem(fl)[0]
            if problem:
                bigger = [f.name for f in offer["flavors"] if flavor_problem(f, role) is None and f.disk > 0]
                raise _bad(f"Flavor ({role})", problem,
                           ("choose another flavor: " + ", ".join(bigger)) if bigger else "ask the cloud admin",
                           "flavor-too-small")
            warn = flavor_disk_problem(fl)[1]
            if warn:
                out["warnings"].append(warn)
                ctx.warn(warn)
        else:
            fl = choose_flavor(offer["flavors"], role)
            if fl is None:
                raise _bad(f"Flavor ({role})", f"cloud {c.name}: {no_flavor_reason(offer['flavors'], role)}",
                           "ask the cloud admin for a flavor with 2 vCPU, 2 GB RAM and a 20 GB disk (workers: 1 vCPU, "
                           "1 GB), or name a flavor in the plan (provision.flavor_control_plane / flavor_worker)",
                           "flavor-too-small")
        out[role] = {"id": fl.id, "name": fl.name, "vcpus": fl.vcpus, "ram": fl.ram, "disk": fl.disk,
                     "label": fl.label}
    # network
    node_subnet = plan.get("node_subnet")
    if s.get("network"):
        net = next((n for n in offer["networks"] if s["network"] in (n["id"], n["name"])), None)
        if net is None:
            raise _bad("Network", f"cloud {c.name} has no network {s['network']!r}",
                       "name an existing tenant network, or leave it empty and labtui creates one", "no-network")
        subs = p.subnets_of(c, net["id"])
        match = next((x for x in subs if _same_net(x["cidr"], node_subnet)), None)
        if match is None:
            raise _bad("Network", f"network {net['name']} has no subnet {node_subnet} (it has: "
                       f"{', '.join(x['cidr'] for x in subs) or 'no subnet'})",
                       "set the plan's node subnet to the network's subnet, or let labtui create a network",
                       "subnet-mismatch")
        out["network"] = {"id": net["id"], "name": net["name"], "subnet_id": match["id"], "existing": True}
        if s.get("dns_nameservers"):
            note = (f"DNS servers: the network {net['name']} exists, labtui does not change its subnet; set them "
                    f"yourself if its DHCP gives none: openstack subnet set "
                    + " ".join(f"--dns-nameserver {d}" for d in s["dns_nameservers"]) + f" {match['id']}")
            out["warnings"].append(note)
            ctx.warn(note)
    else:
        out["network"] = {"existing": False}
    # external network
    ext = None
    if s.get("external_network"):
        ext = next((n for n in offer["networks"] if n["external"] and s["external_network"] in (n["id"], n["name"])), None)
        if ext is None:
            raise _bad("External network", f"cloud {c.name} has no external network {s['external_network']!r}",
                       "choose one of: " + (", ".join(n["name"] for n in offer["networks"] if n["external"])
                                            or "(none: provision without one)"), "no-external-network")
    out["external"] = {"id": ext["id"], "name": ext["name"]} if ext else None
    out["floating_ip"] = bool(ext) and s.get("floating_ip", True) is not False
    # SSH source
    cidr = s.get("ssh_cidr")
    if not cidr:
        mine = p.my_address(c)
        if not mine:
            raise _bad("SSH source", "labtui cannot tell your address", "set provision.ssh_cidr to YOUR.IP/32")
        cidr = f"{mine}/32"
        if ext:  # behind NAT the cloud sees another address than the one labtui guessed (audit F9)
            try:
                ext_cidrs = [x["cidr"] for x in p.subnets_of(c, ext["id"])]
            except LabError:
                ext_cidrs = []  # a member may not see the external network's subnets: warn on the private side alone
            nat = nat_warning(mine, ext_cidrs)
            if nat:
                out["warnings"].append(nat)
                ctx.warn(nat)
    err, warn = ssh_cidr_problem(cidr)
    if err:
        raise _bad("SSH source", err, "write it as CIDR, e.g. 203.0.113.7/32")
    if warn:
        out["warnings"].append(warn)
        ctx.warn(warn)
    out["ssh_cidr"] = str(ipaddress.ip_network(cidr.strip(), strict=False))
    # keypair
    if s.get("keypair"):
        if not any(k["name"] == s["keypair"] for k in offer["keypairs"]):
            raise _bad("Keypair", f"cloud {c.name} has no keypair {s['keypair']!r}",
                       "name one of: " + (", ".join(k["name"] for k in offer["keypairs"]) or "(none)")
                       + ", or leave it empty to import your public key", "no-keypair")
        out["keypair"] = {"name": s["keypair"], "existing": True}
    else:
        path, text = public_key
        out["keypair"] = {"name": lab_names(ctx).keypair, "existing": False, "public_key": text,
                          "file": str(path), "private": str(path)[:-4] if str(path).endswith(".pub") else None}
    if s.get("availability_zone") and offer["availability_zones"] and \
            s["availability_zone"] not in offer["availability_zones"]:
        raise _bad("Availability zone", f"cloud {c.name} has no availability zone {s['availability_zone']!r}",
                   "choose one of: " + ", ".join(offer["availability_zones"]))
    out["availability_zone"] = s.get("availability_zone")
    out["dns_nameservers"] = list(s.get("dns_nameservers") or [])
    out["offer"] = {"images": out["images"], "flavors": [f.label for f in offer["flavors"]],
                    "networks": [n["name"] for n in offer["networks"] if not n["external"]],
                    "external_networks": [n["name"] for n in offer["networks"] if n["external"]],
                    "routers": [r["name"] for r in offer["routers"]],
                    "keypairs": [k["name"] for k in offer["keypairs"]],
                    "availability_zones": offer["availability_zones"]}
    ctx.memo.provision_choices = out
    return out


def _public_key(s: dict[str, Any]) -> tuple[Path, str]:
    """The plan's public key file and its text (the file is read, never the private key): a LabError
    naming the field when it cannot be read or is not an OpenSSH public key."""
    path = Path(s.get("public_key_file") or "~/.ssh/id_ed25519.pub").expanduser()
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise _bad("Public key file", f"cannot read {path}: {exc.strerror or exc}",
                   "create a key with `ssh-keygen -t ed25519`, or set provision.public_key_file / "
                   "provision.keypair") from None
    if "PRIVATE KEY" in text or not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise _bad("Public key file", f"{path} is not an OpenSSH public key",
                   "give the .pub file (labtui never uploads or stores a private key)")
    return path, text


def _same_net(a: str | None, b: str | None) -> bool:
    try:
        return ipaddress.ip_network(a or "", strict=False) == ipaddress.ip_network(b or "", strict=False)
    except ValueError:
        return False


def _nodes(ctx: StepContext) -> list[dict[str, Any]]:
    nodes = (ctx.session.plan or {}).get("nodes") or []
    if not nodes:
        raise LabError(f"lab {ctx.session.name} has no nodes", "finish the plan's Nodes step first", code="no-nodes")
    return nodes


# ----------------------------------------------------------------------------- the actions


def network_actions(ctx: StepContext) -> list[Action]:
    from labtui.changes.cloud import resource_action
    from labtui.provision_plan import DESCRIPTION
    import shlex

    ch = choices(ctx)
    if ch["network"]["existing"]:
        return []
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    cidr = (ctx.session.plan or {})["node_subnet"]
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


def rule_specs(ctx: StepContext) -> list:
    from labtui.provision_plan import rules_for

    ch = choices(ctx)
    specs = rules_for(requirements(ctx), ch["ssh_cidr"], (ctx.session.plan or {}).get("pod_cidr"))
    if ch["floating_ip"]:
        specs.append(api_rule(ch["ssh_cidr"]))
    return specs


def api_rule(cidr: str):
    """TCP 6443 from your machine (the SSH source) to the control plane's floating IP: the kubeconfig labtui
    writes for you then talks to https://<floating IP>:6443 (audit F13; the certificate names the floating
    IP: the Kubernetes stage adds it to the API server's certSANs)."""
    from labtui.provision_plan import RuleSpec

    return RuleSpec("apiserver-from-you", "kubectl on your machine reaches the API server at the control plane's "
                    "floating IP", "tcp", 6443, 6443, "cidr", cidr)


def group_actions(ctx: StepContext) -> list[Action]:
    from dataclasses import asdict
    import shlex

    from labtui.changes.cloud import resource_action
    from labtui.provision_plan import DESCRIPTION

    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    acts = [resource_action("security-group", lab=lab, tag=tag, name=n.group, title=f"create security group {n.group}",
                            command=f"openstack security group create --description {shlex.quote(desc)} "
                                    f"--tag {shlex.quote(tag)} {n.group}",
                            attrs={"name": n.group, "description": desc})]
    for r in rule_specs(ctx):
        a = Action(id=f"sg-rule:{r.key}", title=f"{n.group}: allow {r.what} from "
                   f"{'the group itself' if r.remote == 'group' else r.cidr} ({r.requirement})",
                   command=r.command(n.group), kind="openstack", target=n.group, risk=Risk.CHANGE,
                   change="cloud.sg-rule",
                   api="POST /v2.0/security-group-rules " + _json({"security_group_rule": {
                       k if k != "ether_type" else "ethertype": v for k, v in r.attrs(f"<id of {n.group}>").items()}}),
                   revert="openstack security group rule delete <new rule id>",
                   data={"lab": lab, "tag": tag, "group": n.group, "rule": asdict(r), "why": r.reason},
                   together=f"rules:{n.group}")  # the rules of one group do not depend on each other
        acts.append(a)
    return acts


def _json(data: Any) -> str:
    import json

    return json.dumps(data, sort_keys=True)


def keypair_actions(ctx: StepContext) -> list[Action]:
    from labtui.changes.cloud import resource_action

    ch = choices(ctx)
    kp = ch["keypair"]
    if kp["existing"]:
        return []
    lab, tag = ctx.session.name, lab_tag_of(ctx)
    return [resource_action("keypair", lab=lab, tag=tag, name=kp["name"],
                            title=f"import your public key {kp['file']} as keypair {kp['name']}",
                            command=f"openstack keypair create --public-key {kp['file']} {kp['name']}",
                            attrs={"name": kp["name"], "public_key": kp["public_key"]})]


def machine_actions(ctx: StepContext) -> list[Action]:
    import shlex

    from labtui.changes.cloud import resource_action
    from labtui.provision_plan import DESCRIPTION, pairs_cidr, render_user_data

    ch = choices(ctx)
    plan = ctx.session.plan or {}
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    q = shlex.quote
    pairs = pairs_cidr(requirements(ctx))
    net_name = ch["network"]["name"] if ch["network"]["existing"] else n.network
    ports, servers, fips = [], [], []
    for node in _nodes(ctx):
        role = str(node.get("role") or "worker")
        flavor = ch["control-plane" if role == "control-plane" else "worker"]
        attrs: dict[str, Any] = {"name": n.port(node["name"]), "description": desc,
                                 "fixed_ips": [{"ip_address": node["address"]}]}
        refs: dict[str, list[str]] = {"security_group_ids": ["security-group", n.group]}
        if ch["network"]["existing"]:
            attrs["network_id"] = ch["network"]["id"]
            attrs["fixed_ips"][0]["subnet_id"] = ch["network"]["subnet_id"]
        else:
            refs["network_id"] = ["network", n.network]
        cmd = (f"openstack port create --network {q(net_name)} --fixed-ip ip-address={node['address']} "
               f"--security-group {n.group}")
        if pairs:
            attrs["allowed_address_pairs"] = [{"ip_address": pairs}]
            cmd += f" --allowed-address ip-address={pairs}"
        cmd += f" --description {q(desc)} --tag {q(tag)} {n.port(node['name'])}"
        pa = resource_action("port", lab=lab, tag=tag, name=n.port(node["name"]),
                             title=f"create port {n.port(node['name'])} ({node['address']})", command=cmd,
                             attrs=attrs, refs=refs, target=node["name"], list_refs=("security_group_ids",))
        pa.together = "ports"  # one per node, independent of each other
        ports.append(pa)
        user_data = render_user_data(lab, node["name"], packages=ch["image"]["packages"],
                                     http_proxy=((plan.get("sources") or {}).get("http_proxy") or None))
        sattrs: dict[str, Any] = {"name": n.server(node["name"]), "image_id": ch["image"]["id"],
                                  "flavor_id": flavor["id"], "key_name": ch["keypair"]["name"],
                                  "user_data": _b64(user_data)}
        if ch.get("availability_zone"):
            sattrs["availability_zone"] = ch["availability_zone"]
        scmd = (f"openstack server create --image {q(ch['image']['name'])} --flavor {q(flavor['name'])} "
                f"--port {n.port(node['name'])} --key-name {ch['keypair']['name']} --user-data user-data-{node['name']}.yaml "
                + (f"--availability-zone {q(ch['availability_zone'])} " if ch.get("availability_zone") else "")
                + f"--tag {q(tag)} --description {q(desc)} {n.server(node['name'])}")
        sa = resource_action("server", lab=lab, tag=tag, name=n.server(node["name"]),
                             title=f"create server {n.server(node['name'])} ({role}, {flavor['name']})",
                             command=scmd, attrs=sattrs, target=node["name"], port_name=n.port(node["name"]),
                             node=node["name"], user_data_text=user_data)
        servers.append(sa)
        if role == "control-plane" and ch["floating_ip"]:
            ext = ch["external"]
            fips.append(resource_action(
                "floating-ip", lab=lab, tag=tag, name=n.floating_ip(node["name"]),
                title=f"create a floating IP on {ext['name']} for {node['name']}",
                command=(f"openstack floating ip create --port {n.port(node['name'])} --description {q(desc)} "
                         f"--tag {q(tag)} {q(ext['name'])}"),
                attrs={"floating_network_id": ext["id"], "description": desc},
                refs={"port_id": ["port", n.port(node["name"])]}, target=node["name"],
                port_name=n.port(node["name"])))
    return ports + servers + fips


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def preview_all(ctx: StepContext, actions: list[Action]) -> tuple[bool, list]:
    from labtui.execute import ALREADY, Executor

    outcomes = Executor(ctx, step="provision").preview(actions)
    return all(o.status == ALREADY for o in outcomes), outcomes


# ----------------------------------------------------------------------------- quotas


def quota_needs(ctx: StepContext) -> dict[str, int]:
    """What the plan still needs (resources of this lab that exist already need nothing)."""
    from labtui.adapters import provision as p
    from labtui.changes.cloud import clash, ours

    ch = choices(ctx)
    c = _conn(ctx)
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)

    lookups = [("security-group", n.group)]
    if not ch["network"]["existing"]:
        lookups += [("network", n.network), ("subnet", n.subnet)] + ([("router", n.router)] if ch["external"] else [])
    for node in _nodes(ctx):
        lookups += [("port", n.port(node["name"])), ("server", n.server(node["name"]))]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # reads only, made together
        found_all = dict(zip(lookups, pool.map(lambda kn: p.find(c, kn[0], name=kn[1]), lookups)))
    seen = getattr(ctx.memo, "provision_seen", None)
    if seen is None:
        seen = ctx.memo.provision_seen = {}

    def missing(kind: str, name: str) -> bool:
        found = found_all[(kind, name)]
        for o in found:
            if not ours(o, tag, lab):
                raise clash(kind, name, o["id"], c.name, lab)
        seen[f"{kind}:{name}"] = (time.monotonic(), found[0] if found else None)  # the actions' own lookup
        return not found

    needs = {k: 0 for k in ("instances", "cores", "ram", "ports", "networks", "subnets", "routers",
                            "floating_ips", "security_groups", "security_group_rules")}
    if not ch["network"]["existing"]:
        needs["networks"] += missing("network", n.network)
        needs["subnets"] += missing("subnet", n.subnet)
        if ch["external"]:
            r = missing("router", n.router)
            needs["routers"] += r
            needs["ports"] += r  # the router's interface on the subnet
    if missing("security-group", n.group):
        needs["security_groups"] += 1
        needs["security_group_rules"] += len(rule_specs(ctx)) + 2  # + Neutron's two default egress rules
    fips = p.find(c, "floating-ip", tag=tag) if ch["floating_ip"] else []
    for node in _nodes(ctx):
        role = str(node.get("role") or "worker")
        flavor = ch["control-plane" if role == "control-plane" else "worker"]
        needs["ports"] += missing("port", n.port(node["name"]))
        if missing("server", n.server(node["name"])):
            needs["instances"] += 1
            needs["cores"] += flavor["vcpus"]
            needs["ram"] += flavor["ram"]
        if role == "control-plane" and ch["floating_ip"] and not fips:
            needs["floating_ips"] += 1
    if ch["keypair"]["existing"] is False:
        missing_kp = not p.find(c, "keypair", name=ch["keypair"]["name"])
        needs["key_pairs"] = int(missing_kp)
    return needs


# ----------------------------------------------------------------------------- steps


class ProvisionStep(Step):
    def not_applicable(self, ctx: StepContext) -> str | None:
        """Why the step does not apply, from the saved plan alone (no cloud read): shown as soon as the
        lab opens. None while the plan is not saved (the step may apply then)."""
        return skip_reason(ctx) if ctx.session.plan else None

    def skip(self, ctx: StepContext) -> CheckResult | None:
        reason = skip_reason(ctx)
        return CheckResult(False, reason, skip=True) if reason else None


class OfferStep(ProvisionStep):
    id = "offer"
    title = "What the cloud offers"
    why = (
        "labtui reads the project's images, flavors, networks, routers, external networks, keypairs and\n"
        "availability zones. It prefers an Ubuntu 24.04 / 22.04 or Debian 12 cloud image and guesses its\n"
        "login user from the image's metadata. kubeadm refuses a control plane with fewer than 2 vCPU or\n"
        "2 GB RAM (workers: 1 vCPU, 1 GB): smaller flavors are refused here with kubeadm's own reason."
    )
    hint = "set the plan's provision block (image, flavors, network, external network, keypair)"

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        ch = choices(ctx)
        ctx.store.put_facts(ctx.session.id, SCOPE, {"choices": {k: v for k, v in ch.items() if k != "keypair"} |
                                                    {"keypair": {k: v for k, v in ch["keypair"].items()
                                                                 if k != "public_key"}}})
        net = (f"existing network {ch['network']['name']}" if ch["network"]["existing"]
               else f"a new network for {(ctx.session.plan or {}).get('node_subnet')}")
        detail = (f"image {ch['image']['label']} (login {ch['login_user']}); control plane "
                  f"{ch['control-plane']['name']}, workers {ch['worker']['name']}; {net}"
                  + (f", router to {ch['external']['name']}" if ch["external"] else ", no external network")
                  + f"; SSH from {ch['ssh_cidr']}"
                  + (f"; DNS {', '.join(ch['dns_nameservers'])}" if ch.get("dns_nameservers") else "")
                  + "".join(f"\n    ! {w}" for w in ch.get("warnings") or []))
        return CheckResult(True, detail, {"choices": ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {}).get("choices")})


class QuotaStep(ProvisionStep):
    id = "quotas"
    title = "Quotas first"
    why = (
        "Before anything is created, labtui compares what the plan still needs (servers, vCPUs, RAM,\n"
        "ports, networks, routers, floating IPs, security groups and rules) with what is left of the\n"
        "project's quotas, and checks that no resource with the lab's names exists that this lab did\n"
        "not create. A shortfall stops here, with nothing half-built."
    )

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        from labtui.adapters import provision as p
        from labtui.provision_plan import quota_shortfalls, shortfall_hint

        needs = quota_needs(ctx)
        left = p.quota_left(_conn(ctx))
        short = quota_shortfalls(needs, left)
        if short:
            raise LabError(f"cloud {_conn(ctx).name}: not enough quota for lab {ctx.session.name}: "
                           + "; ".join(s.message() for s in short) + ". Nothing was created",
                           shortfall_hint(short), code="quota")
        wanted = {k: v for k, v in needs.items() if v}
        detail = ("needs " + ", ".join(f"{v} {k}" for k, v in wanted.items()) + ": within the quotas") if wanted \
            else "everything exists already"
        return CheckResult(True, detail, {"needs": needs, "left": left})


class _ActionsStep(ProvisionStep):
    def actions(self, ctx: StepContext) -> list[Action]:
        return []

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        acts = self.actions(ctx)
        if not acts:
            return CheckResult(True, self.nothing(ctx))
        done, outcomes = preview_all(ctx, acts)
        pending = [o.action.title for o in outcomes if o.status != "already"]
        return CheckResult(done, "all exist, created by this lab" if done else f"{len(pending)} to create")

    def nothing(self, ctx: StepContext) -> str:
        return "nothing to create"

    def plan(self, ctx: StepContext) -> list[Action]:
        return self.actions(ctx)


class NetworkStep(_ActionsStep):
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


class GroupStep(_ActionsStep):
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


class KeypairStep(_ActionsStep):
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


class MachinesStep(_ActionsStep):
    id = "machines"
    title = "Machines"
    why = (
        "One server per plan node, on a port with the node's fixed IP and the lab's group, with\n"
        "cloud-init user-data that prepares it for kubeadm (swap off, overlay and br_netfilter, the\n"
        "sysctls, /etc/hosts, apt's proxy; the packages come later, from the Kubernetes stage) and\n"
        "prints its SSH host keys on the console.\n"
        "All servers build in parallel; a server that ends in ERROR is shown with its fault and the\n"
        "next run recreates only it. With an external network a floating IP goes on the control plane:\n"
        "it is the way in (SSH to the control plane at that address, to the other nodes through it)."
    )
    hint = "run the step again: labtui deletes the failed server and creates only it"

    def actions(self, ctx: StepContext) -> list[Action]:
        return machine_actions(ctx)

    def check(self, ctx: StepContext) -> CheckResult:
        res = super().check(ctx)
        if res.skip or not res.done:
            return res
        states = server_states(ctx)
        bad = {k: v for k, v in states.items() if v.get("status") != "ACTIVE"}
        if bad:
            return CheckResult(False, "; ".join(f"{k}: {v.get('status')}" + (f" ({v['fault']})" if v.get("fault") else "")
                                                for k, v in bad.items()))
        _write_nodes(ctx, choices(ctx))  # the plan's nodes follow the servers (a run killed before it wrote them)
        return CheckResult(True, f"{len(states)} servers ACTIVE", {"servers": {k: {"id": v["id"], "status": v["status"]}
                                                                          for k, v in states.items()}})

    def after_apply(self, ctx: StepContext, execution: Any) -> None:
        wait_for_servers(ctx)

    def verify(self, ctx: StepContext) -> CheckResult:
        # the executor just ran (and verified) each action; what is left to prove is every server ACTIVE
        # (the wait's last poll, made a moment ago, says it)
        states = server_states(ctx, fresh_for=10.0)
        bad = {k: v for k, v in states.items() if v.get("status") != "ACTIVE"}
        if bad:
            return CheckResult(False, "; ".join(f"{k}: {v.get('status')}" for k, v in bad.items()))
        return CheckResult(True, f"{len(states)} servers ACTIVE",
                           {"servers": {k: {"id": v["id"], "status": v["status"]} for k, v in states.items()}})


def server_states(ctx: StepContext, *, fresh_for: float = 0.0) -> dict[str, dict[str, Any]]:
    """node -> its server's summary; `fresh_for`: a poll of this run made that recently serves."""
    from labtui.adapters import provision as p

    hit = ctx.memo.bucket(SCOPE).get("servers")
    if hit is not None and time.monotonic() - hit[0] < fresh_for and set(hit[1]) == {x["name"] for x in _nodes(ctx)}:
        return hit[1]
    c = _conn(ctx)
    n = lab_names(ctx)
    found = {o["name"]: o for o in p.find(c, "server", tag=lab_tag_of(ctx))}
    return {node["name"]: found.get(n.server(node["name"]), {"status": "MISSING", "id": None})
            for node in _nodes(ctx)}


def wait_for_servers(ctx: StepContext) -> dict[str, dict[str, Any]]:
    """Wait for every server of the lab together; progress per server; write the plan's nodes."""
    from labtui.adapters import provision as p
    from labtui.changes.cloud import join_server_posts

    c = _conn(ctx)
    n = lab_names(ctx)
    post_failed = join_server_posts(ctx)
    if post_failed:
        raise LabError(f"cloud {c.name}: could not create " + "; ".join(f"server {k}: {v}" for k, v in post_failed.items()),
                       "the servers asked for before it are recorded (teardown removes them); fix the cause and run "
                       "provision again: it creates only what is missing", code="server-create")
    found = {o["name"]: o for o in p.find(c, "server", tag=lab_tag_of(ctx))}
    ids = {node["name"]: found[n.server(node["name"])]["id"] for node in _nodes(ctx) if n.server(node["name"]) in found}
    started = time.monotonic()

    def on_change(node: str, info: dict[str, Any]) -> None:
        addrs = ", ".join(a.get("addr", "") for v in (info.get("addresses") or {}).values() for a in v or [])
        text = f"{n.server(node)}: {info['status']}" + (f" ({addrs})" if addrs else "") + \
            (f": {info['fault']}" if info.get("fault") else "") + f" after {time.monotonic() - started:.1f}s"
        ctx.emit(Event(ev.WARN if info["status"] == "ERROR" else ev.INFO, text, node=node, step="machines",
                       data={"server": info.get("id"), "status": info["status"]}))

    timeout = float(getattr(ctx.tuning, "provision_wait", 0) or 600.0)
    states = p.wait_servers(c, ids, timeout=timeout, poll=0.25, on_change=on_change, cancel=ctx.cancel)
    # the last poll is what the step's verify and the host keys' console reads start from (not read again)
    ctx.memo.bucket(SCOPE)["servers"] = (time.monotonic(), states)
    ch = choices(ctx)
    _write_nodes(ctx, ch)
    errors = {k: v for k, v in states.items() if v.get("status") != "ACTIVE"}
    if errors:
        what = "; ".join(f"{n.server(k)}: {v.get('status')}" + (f": {v['fault']}" if v.get("fault") else "")
                         for k, v in errors.items())
        raise LabError(f"cloud {c.name}: {len(errors)} of {len(states)} servers did not become ACTIVE: {what}",
                       "the others are ready; run provision again to recreate only the failed servers "
                       "(a 'No valid host' fault means the cloud has no room for that flavor: try a smaller one)",
                       code="server-error")
    return states


def control_plane_floating_ip(ctx: StepContext) -> str | None:
    """The floating IP on the control plane's port (None: the plan has none, or it is not there yet)."""
    from labtui.adapters import provision as p
    from labtui.changes.cloud import resolve

    if not choices(ctx)["floating_ip"]:
        return None
    cp = next((x for x in _nodes(ctx) if str(x.get("role")) == "control-plane"), None)
    if cp is None:
        return None
    c = _conn(ctx)
    lab, tag = ctx.session.name, lab_tag_of(ctx)
    try:
        port_id = resolve(ctx, "port", lab_names(ctx).port(cp["name"]), lab, tag)
    except LabError:
        return None
    return next((o.get("address") for o in p.find(c, "floating-ip", tag=tag) if o.get("port_id") == port_id), None)


def _write_nodes(ctx: StepContext, ch: dict[str, Any]) -> None:
    """The login user (and the key file that goes with an imported key) into the plan's nodes, and
    the way in: with a floating IP on the control plane, SSH goes to that address for the control
    plane (`ssh_host`; its `address` stays the fixed IP Kubernetes uses) and through it
    (`proxy_jump: <login user>@<floating IP>`) for the other nodes, whose subnet is not reachable
    from here. A ProxyJump the user set is kept. The wizard's node inputs get the same values, so
    the saved plan and the Plan stage's inputs agree."""
    ctx.reload()
    plan = dict(ctx.session.plan or {})
    fip = control_plane_floating_ip(ctx)
    facts = ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {})
    ours = (facts.get("way_in") or {}).get("proxy_jump")  # the ProxyJump labtui wrote before (may be replaced)
    jump = f"{ch['login_user']}@{fip}" if fip else None
    updates: dict[str, dict[str, Any]] = {}
    for node in plan.get("nodes") or []:
        new: dict[str, Any] = {}
        if node.get("user") != ch["login_user"]:
            new["user"] = ch["login_user"]
        private = ch["keypair"].get("private")
        if private and not node.get("key_file") and Path(private).exists():
            new["key_file"] = private
        if fip:
            if str(node.get("role")) == "control-plane":
                if node.get("ssh_host") != fip:
                    new["ssh_host"] = fip
            elif node.get("proxy_jump") in (None, "", ours) and node.get("proxy_jump") != jump:
                new["proxy_jump"] = jump
        if new:
            updates[node["name"]] = new
    if fip:  # api_cidr: the group lets 6443 in from there (api_rule), so a kubeconfig can use the floating IP
        ctx.store.put_facts(ctx.session.id, SCOPE, {"way_in": {"floating_ip": fip, "proxy_jump": jump,
                                                               "api_cidr": ch["ssh_cidr"]}})
    if not updates:
        return
    plan["nodes"] = [dict(n, **updates.get(n["name"], {})) for n in plan.get("nodes") or []]
    ctx.store.update_session(ctx.session.name, plan=plan)
    inputs = ctx.session.inputs
    values: dict[str, Any] = {}
    if isinstance(inputs.get("nodes"), list):
        values["nodes"] = [dict(n, **updates.get(n.get("name"), {})) for n in inputs["nodes"]]
    if fip and not inputs.get("api_floating_ip"):
        values["api_floating_ip"] = fip  # the API certificate is valid for the floating IP too (kubeadm SAN)
    if values:
        ctx.store.save_inputs(ctx.session.name, values)
    ctx.reload()
    if fip and any("ssh_host" in u or "proxy_jump" in u for u in updates.values()):
        others = [n for n, u in updates.items() if "proxy_jump" in u]
        ctx.info(f"the way in: SSH reaches the control plane at its floating IP {fip}"
                 + (f" and {', '.join(others)} through it (ProxyJump {jump})" if others else ""),
                 data={"floating_ip": fip, "proxy_jump": jump})


class HostKeysStep(ProvisionStep):
    id = "host-keys"
    title = "Host keys from the console"
    why = (
        "Before the first SSH connection labtui reads each server's console log, takes the host key\n"
        "fingerprints cloud-init printed there, and pins the keys whose fingerprints match into its\n"
        "known_hosts: nobody can stand in for your new VM. A key that differs from the console's is\n"
        "refused. cloud-init prints them only after the user-data's commands, so labtui waits for them\n"
        "(all servers together, up to 10 minutes); if they never come it says so and asks you at first contact."
    )

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        from labtui.adapters.ssh import session_ssh

        facts = ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {}).get("host_keys") or {}
        ssh = session_ssh(ctx)
        todo, asked = [], []
        for node in _nodes(ctx):
            known, _ = ssh.known_hosts.lookup(_host_key_name(node))
            if known:
                continue
            if facts.get(node["name"]) == "no-fingerprints":
                asked.append(node["name"])
                continue
            todo.append(node["name"])
        if todo:
            return CheckResult(False, f"not pinned yet: {', '.join(todo)}")
        detail = "every node's host key is pinned"
        if asked:
            detail = (f"{', '.join(asked)}: no fingerprints on the console, labtui asks at first contact"
                      + ("; the others are pinned" if len(asked) < len(_nodes(ctx)) else ""))
        return CheckResult(True, detail)

    def plan(self, ctx: StepContext) -> list[Action]:
        n = lab_names(ctx)
        nodes = [node["name"] for node in _nodes(ctx)]
        return [Action(id="host-keys", title=f"pin the host keys of {', '.join(nodes)} from their console logs",
                       command="\n".join(f"until openstack console log show {n.server(x)} | grep -q 'END SSH HOST KEY "
                                          f"FINGERPRINTS'; do sleep 5; done; openstack console log show {n.server(x)} "
                                          "| grep -A6 'BEGIN SSH HOST KEY FINGERPRINTS'" for x in nodes),
                       kind="local", target=", ".join(nodes), risk=Risk.LOCAL, run=_pin_all,
                       api="POST /compute/v2.1/servers/<id>/action {\"os-getConsoleOutput\": {}} (each server)",
                       data={"nodes": nodes})]


def _host_key_name(node: dict[str, Any]) -> str:
    """The name SSH looks the node's key up under: where it connects (a floating IP, else the address)."""
    port = int(node.get("port") or 22)
    host = node.get("ssh_host") or node["address"]
    return host if port == 22 else f"[{host}]:{port}"


def _pin_all(ctx: StepContext, action: Action) -> dict[str, Any]:
    """Read every server's console together, then pin node by node (the first refusal stops)."""
    from concurrent.futures import ThreadPoolExecutor

    from labtui.adapters import provision as p

    c = _conn(ctx)
    n = lab_names(ctx)
    polled = server_states(ctx, fresh_for=10.0)  # the Machines step's last poll, when it was just made
    servers = {n.server(x): v for x, v in polled.items() if v.get("id")}
    roles = {x["name"]: str(x.get("role")) for x in _nodes(ctx)}
    # the control plane first: the others may be reached through it (ProxyJump), and its key must be pinned by then
    nodes = sorted(action.data["nodes"], key=lambda x: roles.get(x) != "control-plane")
    missing = [x for x in nodes if n.server(x) not in servers]
    if missing:
        raise LabError(f"cloud {c.name}: the servers of {', '.join(missing)} do not exist",
                       "run the Machines step first", code="missing-resource")
    consoles, waited = wait_for_host_keys(ctx, c, {x: servers[n.server(x)]["id"] for x in nodes})
    return {x: pin_host_key(ctx, x, n.server(x), consoles[x], waited=waited.get(x)) for x in nodes}


# how long the host keys may take to reach the console: cloud-init prints them after the user-data's runcmd
# (see labtui.provision_plan.fingerprints_printed); tests and the bench shorten these module values
HOST_KEY_WAIT = 600.0
HOST_KEY_POLL = 5.0
HOST_KEY_NOTE_EVERY = 30.0  # a progress line this often while waiting


def wait_for_host_keys(ctx: StepContext, c: Any, ids: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    """Poll every server's console together (os-getConsoleOutput) every few seconds until cloud-init's
    fingerprint block is on it, or the wait is over. Returns (node -> its last console text,
    node -> seconds waited in vain for the nodes whose block never came)."""
    from concurrent.futures import ThreadPoolExecutor

    from labtui.adapters import provision as p
    from labtui.provision_plan import fingerprints_printed

    timeout, poll = HOST_KEY_WAIT, HOST_KEY_POLL
    started = time.monotonic()
    texts: dict[str, str] = {}
    pending = list(ids)
    noted = started
    with ThreadPoolExecutor(min(8, len(ids)) or 1) as pool:
        while pending:
            got = dict(zip(pending, pool.map(lambda x: p.console_output(c, ids[x]), pending)))
            texts.update(got)
            now = time.monotonic()
            for node in [x for x in pending if fingerprints_printed(got[x])]:
                pending.remove(node)
                ctx.info(f"{node}: cloud-init printed the SSH host keys on the console after {now - started:.0f} s",
                         node=node, step="host-keys")
            if not pending or now - started >= timeout or ctx.cancel.is_set():
                break
            if now - noted >= HOST_KEY_NOTE_EVERY or noted == started:
                noted = now
                ctx.info(f"waiting for cloud-init to print the SSH host keys of {', '.join(pending)} on the console "
                         f"({now - started:.0f} s of {timeout:.0f} s; it prints them once the user-data's commands "
                         "are done)", step="host-keys", data={"pending": list(pending)})
            ctx.cancel.wait(min(poll, max(0.0, timeout - (now - started))))
    spent = time.monotonic() - started
    return texts, {x: spent for x in pending}


def pin_host_key(ctx: StepContext, node: str, server_name: str, console: str,
                 waited: float | None = None) -> dict[str, Any]:
    """Pin the node's key when its fingerprint is on the console; refuse a different key. `waited`: the
    seconds labtui waited for the fingerprints in vain (the console never showed them)."""
    from labtui.adapters.ssh import HostKeyInfo, session_ssh
    from labtui.provision_plan import console_host_keys

    keys = console_host_keys(console)
    ssh = session_ssh(ctx)
    facts = ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {}).get("host_keys") or {}
    if not keys:
        why = (f"after waiting {waited:.0f} s, the console log of {server_name} still holds no SSH host key "
               "fingerprints (cloud-init has not finished its user-data yet, failed, or the image does not print "
               "them)") if waited is not None else \
            f"the console log of {server_name} holds no SSH host key fingerprints"
        ctx.warn(f"{node}: timed out: {why}. labtui cannot pin the key, so it is NOT verified: at first contact "
                 "you will be shown the key's fingerprint to compare (a headless run refuses it unless "
                 "--accept-new-host-keys); check it with `openstack console log show " + server_name + "` when "
                 "cloud-init is done", node=node)
        facts[node] = "no-fingerprints"
        ctx.store.put_facts(ctx.session.id, SCOPE, {"host_keys": facts})
        return {"node": node, "pinned": None}
    info = ssh.scan_host_key(node)
    fps = {k.fingerprint for k in keys}
    if info.fingerprint not in fps:
        raise LabError(f"{node}: the host key of {info.host} ({info.describe()}) is NOT one the console of "
                       f"{server_name} printed ({', '.join(sorted(fps))}): refused",
                       "something else answers at this address, or the VM was rebuilt: check the address and the "
                       "console log (`openstack console log show " + server_name + "`)", code="hostkey-mismatch")
    ssh.trust_host_key(HostKeyInfo(node=node, host=info.host, key_type=info.key_type, fingerprint=info.fingerprint,
                                   key_base64=info.key_base64))
    facts[node] = info.fingerprint
    ctx.store.put_facts(ctx.session.id, SCOPE, {"host_keys": facts})
    ctx.info(f"{node}: pinned {info.describe()} (it matches the console of {server_name})", node=node)
    return {"node": node, "pinned": info.fingerprint}


def build() -> Wizard:
    return Wizard("provision", "Provision", [OfferStep(), QuotaStep(), NetworkStep(), GroupStep(), KeypairStep(),
                                             MachinesStep(), HostKeysStep()])

