"""The servers' SSH host keys, pinned from the fingerprints cloud-init prints on their consoles."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labtui.adapters import provision as p
from labtui.adapters.ssh import session_ssh
from labtui.adapters.sshkeys import HostKeyInfo
from labtui.errors import LabError
from labtui.model import NodeSpec, Role
from labtui.provision_plan import console_host_keys, fingerprints_printed
from labtui.stages.cloud import service
from labtui.stages.provision.common import SCOPE, ProvisionStep, lab_names, plan_nodes
from labtui.stages.provision.machines import server_states
from labtui.steps import Action, CheckResult, Risk, StepContext

# how long the host keys may take to reach the console: cloud-init prints them after the user-data's runcmd
# (see labtui.provision_plan.fingerprints_printed); tests and the bench shorten these module values
HOST_KEY_WAIT = 600.0
HOST_KEY_POLL = 5.0
HOST_KEY_NOTE_EVERY = 30.0  # a progress line this often while waiting


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
        facts = ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {}).get("host_keys") or {}
        ssh = session_ssh(ctx)
        nodes = plan_nodes(ctx)
        todo, asked = [], []
        for node in nodes:
            known, _ = ssh.known_hosts.lookup(host_key_name(node))
            if known:
                continue
            if facts.get(node.name) == "no-fingerprints":
                asked.append(node.name)
                continue
            todo.append(node.name)
        if todo:
            return CheckResult(False, f"not pinned yet: {', '.join(todo)}")
        detail = "every node's host key is pinned"
        if asked:
            detail = (f"{', '.join(asked)}: no fingerprints on the console, labtui asks at first contact"
                      + ("; the others are pinned" if len(asked) < len(nodes) else ""))
        return CheckResult(True, detail)

    def plan(self, ctx: StepContext) -> list[Action]:
        n = lab_names(ctx)
        nodes = [node.name for node in plan_nodes(ctx)]
        return [Action(id="host-keys", title=f"pin the host keys of {', '.join(nodes)} from their console logs",
                       command="\n".join(f"until openstack console log show {n.server(x)} | grep -q 'END SSH HOST KEY "
                                          f"FINGERPRINTS'; do sleep 5; done; openstack console log show {n.server(x)} "
                                          "| grep -A6 'BEGIN SSH HOST KEY FINGERPRINTS'" for x in nodes),
                       kind="local", target=", ".join(nodes), risk=Risk.LOCAL, run=pin_all,
                       api="POST /compute/v2.1/servers/<id>/action {\"os-getConsoleOutput\": {}} (each server)",
                       data={"nodes": nodes})]


def host_key_name(node: NodeSpec) -> str:
    """The name SSH looks the node's key up under: where it connects (a floating IP, else the address)."""
    host = node.ssh_host or node.address
    return host if node.port == 22 else f"[{host}]:{node.port}"


def pin_all(ctx: StepContext, action: Action) -> dict[str, Any]:
    """Read every server's console together, then pin node by node (the first refusal stops)."""
    c = service(ctx)
    n = lab_names(ctx)
    polled = server_states(ctx, fresh_for=10.0)  # the Machines step's last poll, when it was just made
    servers = {n.server(x): v for x, v in polled.items() if v.get("id")}
    roles = {x.name: x.role for x in plan_nodes(ctx)}
    # the control plane first: the others may be reached through it (ProxyJump), and its key must be pinned by then
    nodes = sorted(action.data["nodes"], key=lambda x: roles.get(x) != Role.CONTROL_PLANE)
    missing = [x for x in nodes if n.server(x) not in servers]
    if missing:
        raise LabError(f"cloud {c.name}: the servers of {', '.join(missing)} do not exist",
                       "run the Machines step first", code="missing-resource")
    consoles, waited = wait_for_host_keys(ctx, c, {x: servers[n.server(x)]["id"] for x in nodes})
    return {x: pin_host_key(ctx, x, n.server(x), consoles[x], waited=waited.get(x)) for x in nodes}


def wait_for_host_keys(ctx: StepContext, c: Any, ids: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    """Poll every server's console together (os-getConsoleOutput) every few seconds until cloud-init's
    fingerprint block is on it, or the wait is over. Returns (node -> its last console text,
    node -> seconds waited in vain for the nodes whose block never came)."""
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
