"""The lab's machines: a port with the node's fixed IP, a server with cloud-init's user-data, a
floating IP on the control plane; the wait for every server ACTIVE, and the way in written into the
plan's nodes (login user, key file, ssh_host and ProxyJump)."""

from __future__ import annotations

import base64
import shlex
import time
from pathlib import Path
from typing import Any

from labtui import events as ev
from labtui.adapters import provision as p
from labtui.changes.cloud import join_server_posts, resolve, resource_action
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import Role
from labtui.provision_plan import DESCRIPTION, pairs_cidr, render_user_data
from labtui.stages.cloud import service
from labtui.stages.provision.common import SCOPE, ActionsStep, lab_names, lab_tag_of, plan_nodes, requirements
from labtui.stages.provision.offer import choices
from labtui.steps import Action, CheckResult, StepContext


def machine_actions(ctx: StepContext) -> list[Action]:
    ch = choices(ctx)
    plan = ctx.plan
    http_proxy = (plan.sources.http_proxy if plan else None) or None
    lab, tag, n = ctx.session.name, lab_tag_of(ctx), lab_names(ctx)
    desc = DESCRIPTION.format(lab=lab)
    q = shlex.quote
    pairs = pairs_cidr(requirements(ctx))
    net_name = ch["network"]["name"] if ch["network"]["existing"] else n.network
    ports, servers, fips = [], [], []
    for node in plan_nodes(ctx):
        role = node.role.value
        flavor = ch["control-plane" if node.role == Role.CONTROL_PLANE else "worker"]
        attrs: dict[str, Any] = {"name": n.port(node.name), "description": desc,
                                 "fixed_ips": [{"ip_address": node.address}]}
        refs: dict[str, list[str]] = {"security_group_ids": ["security-group", n.group]}
        if ch["network"]["existing"]:
            attrs["network_id"] = ch["network"]["id"]
            attrs["fixed_ips"][0]["subnet_id"] = ch["network"]["subnet_id"]
        else:
            refs["network_id"] = ["network", n.network]
        cmd = (f"openstack port create --network {q(net_name)} --fixed-ip ip-address={node.address} "
               f"--security-group {n.group}")
        if pairs:
            attrs["allowed_address_pairs"] = [{"ip_address": pairs}]
            cmd += f" --allowed-address ip-address={pairs}"
        cmd += f" --description {q(desc)} --tag {q(tag)} {n.port(node.name)}"
        pa = resource_action("port", lab=lab, tag=tag, name=n.port(node.name),
                             title=f"create port {n.port(node.name)} ({node.address})", command=cmd,
                             attrs=attrs, refs=refs, target=node.name, list_refs=("security_group_ids",))
        pa.together = "ports"  # one per node, independent of each other
        ports.append(pa)
        user_data = render_user_data(lab, node.name, packages=ch["image"]["packages"], http_proxy=http_proxy)
        sattrs: dict[str, Any] = {"name": n.server(node.name), "image_id": ch["image"]["id"],
                                  "flavor_id": flavor["id"], "key_name": ch["keypair"]["name"],
                                  "user_data": base64.b64encode(user_data.encode()).decode()}
        if ch.get("availability_zone"):
            sattrs["availability_zone"] = ch["availability_zone"]
        scmd = (f"openstack server create --image {q(ch['image']['name'])} --flavor {q(flavor['name'])} "
                f"--port {n.port(node.name)} --key-name {ch['keypair']['name']} --user-data user-data-{node.name}.yaml "
                + (f"--availability-zone {q(ch['availability_zone'])} " if ch.get("availability_zone") else "")
                + f"--tag {q(tag)} --description {q(desc)} {n.server(node.name)}")
        sa = resource_action("server", lab=lab, tag=tag, name=n.server(node.name),
                             title=f"create server {n.server(node.name)} ({role}, {flavor['name']})",
                             command=scmd, attrs=sattrs, target=node.name, port_name=n.port(node.name),
                             node=node.name, user_data_text=user_data)
        servers.append(sa)
        if node.role == Role.CONTROL_PLANE and ch["floating_ip"]:
            ext = ch["external"]
            fips.append(resource_action(
                "floating-ip", lab=lab, tag=tag, name=n.floating_ip(node.name),
                title=f"create a floating IP on {ext['name']} for {node.name}",
                command=(f"openstack floating ip create --port {n.port(node.name)} --description {q(desc)} "
                         f"--tag {q(tag)} {q(ext['name'])}"),
                attrs={"floating_network_id": ext["id"], "description": desc},
                refs={"port_id": ["port", n.port(node.name)]}, target=node.name,
                port_name=n.port(node.name)))
    return ports + servers + fips


class MachinesStep(ActionsStep):
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
        write_nodes(ctx, choices(ctx))  # the plan's nodes follow the servers (a run killed before it wrote them)
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
    nodes = plan_nodes(ctx)
    hit = ctx.memo.bucket(SCOPE).get("servers")
    if hit is not None and time.monotonic() - hit[0] < fresh_for and set(hit[1]) == {x.name for x in nodes}:
        return hit[1]
    c = service(ctx)
    n = lab_names(ctx)
    found = {o["name"]: o for o in p.find(c, "server", tag=lab_tag_of(ctx))}
    return {node.name: found.get(n.server(node.name), {"status": "MISSING", "id": None}) for node in nodes}


def wait_for_servers(ctx: StepContext) -> dict[str, dict[str, Any]]:
    """Wait for every server of the lab together; progress per server; write the plan's nodes."""
    c = service(ctx)
    n = lab_names(ctx)
    post_failed = join_server_posts(ctx)
    if post_failed:
        raise LabError(f"cloud {c.name}: could not create " + "; ".join(f"server {k}: {v}" for k, v in post_failed.items()),
                       "the servers asked for before it are recorded (teardown removes them); fix the cause and run "
                       "provision again: it creates only what is missing", code="server-create")
    found = {o["name"]: o for o in p.find(c, "server", tag=lab_tag_of(ctx))}
    ids = {node.name: found[n.server(node.name)]["id"] for node in plan_nodes(ctx) if n.server(node.name) in found}
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
    write_nodes(ctx, ch)
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
    if not choices(ctx)["floating_ip"]:
        return None
    cp = next((x for x in plan_nodes(ctx) if x.role == Role.CONTROL_PLANE), None)
    if cp is None:
        return None
    c = service(ctx)
    lab, tag = ctx.session.name, lab_tag_of(ctx)
    try:
        port_id = resolve(ctx, "port", lab_names(ctx).port(cp.name), lab, tag)
    except LabError:
        return None
    return next((o.get("address") for o in p.find(c, "floating-ip", tag=tag) if o.get("port_id") == port_id), None)


def write_nodes(ctx: StepContext, ch: dict[str, Any]) -> None:
    """The login user (and the key file that goes with an imported key) into the plan's nodes, and
    the way in: with a floating IP on the control plane, SSH goes to that address for the control
    plane (`ssh_host`; its `address` stays the fixed IP Kubernetes uses) and through it
    (`proxy_jump: <login user>@<floating IP>`) for the other nodes, whose subnet is not reachable
    from here. A ProxyJump the user set is kept. The wizard's node inputs get the same values, so
    the saved plan and the Plan stage's inputs agree."""
    ctx.reload()
    plan = ctx.plan
    fip = control_plane_floating_ip(ctx)
    facts = ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {})
    ours = (facts.get("way_in") or {}).get("proxy_jump")  # the ProxyJump labtui wrote before (may be replaced)
    jump = f"{ch['login_user']}@{fip}" if fip else None
    updates: dict[str, dict[str, Any]] = {}
    for node in plan.nodes if plan else []:
        new: dict[str, Any] = {}
        if node.user != ch["login_user"]:
            new["user"] = ch["login_user"]
        private = ch["keypair"].get("private")
        if private and not node.key_file and Path(private).exists():
            new["key_file"] = private
        if fip:
            if node.role == Role.CONTROL_PLANE:
                if node.ssh_host != fip:
                    new["ssh_host"] = fip
            elif node.proxy_jump in (None, "", ours) and node.proxy_jump != jump:
                new["proxy_jump"] = jump
        if new:
            updates[node.name] = new
    if fip:  # api_cidr: the group lets 6443 in from there (api_rule), so a kubeconfig can use the floating IP
        ctx.store.put_facts(ctx.session.id, SCOPE, {"way_in": {"floating_ip": fip, "proxy_jump": jump,
                                                               "api_cidr": ch["ssh_cidr"]}})
    if not updates or plan is None:
        return
    nodes = [n.model_copy(update=updates.get(n.name, {})) for n in plan.nodes]
    ctx.store.update_session(ctx.session.name, plan=plan.model_copy(update={"nodes": nodes}).model_dump(mode="json"))
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
