"""Teardown: delete everything a lab created on the cloud, in an order that works (what uses a
resource goes before it), through the executor's revert; nothing the lab did not create is touched
(its record and its tag say what it created). Afterwards the stages that needed the machines are
pending again. Used by `labtui teardown NAME` and the wizard's ctrl+t."""

from __future__ import annotations

from labtui.adapters import provision as p
from labtui.changes.cloud import TITLES
from labtui.errors import LabError
from labtui.execute import Executor
from labtui.stages import WIZARD_ORDER, wizard_for
from labtui.stages.cloud import service
from labtui.stages.provision.common import lab_tag_of
from labtui.steps import StepContext
from labtui.store import Change

# the order things are deleted in: what uses a resource goes before it
TEARDOWN_ORDER = ["cloud.floating-ip", "cloud.server", "cloud.port", "cloud.sg-rule", "cloud.security-group",
                  "cloud.keypair", "cloud.router-interface", "cloud.router", "cloud.subnet", "cloud.network"]
_TAGGED = {"cloud.floating-ip": "floating-ip", "cloud.server": "server", "cloud.port": "port",
           "cloud.security-group": "security-group", "cloud.router": "router", "cloud.subnet": "subnet",
           "cloud.network": "network"}


def teardown_plan(ctx: StepContext) -> list:
    """Everything this lab created, in delete order: the lab's record, plus resources that carry
    the lab's tag but were never recorded (a run killed right after a create). Returns
    store.Change objects (the unrecorded ones with id None)."""
    lab, tag = ctx.session.name, lab_tag_of(ctx)
    recorded = [c for c in ctx.store.changes(ctx.session.id) if c.kind in TEARDOWN_ORDER and not c.reverted]
    known = {(c.kind, str((c.revert_data or {}).get("id"))) for c in recorded}
    named = {(c.kind, (c.revert_data or {}).get("name")) for c in recorded if not (c.revert_data or {}).get("id")}
    extra: list[Change] = []
    try:
        c = service(ctx)
    except LabError:
        raise
    for kind, res in _TAGGED.items():
        for o in p.find(c, res, tag=tag):
            if (kind, o["id"]) in known or (kind, o.get("name")) in named:
                continue
            noun = TITLES[res]
            extra.append(Change(kind=kind, target=o.get("name") or o["id"],
                                description=f"{noun} {o.get('name') or o['id']} (found by the lab's tag)",
                                command=f"(created by lab {lab}; found by its tag)",
                                revert_command=f"openstack {noun} delete {o['id']}",
                                revert_data={"id": o["id"], "name": o.get("name"), "lab": lab, "tag": tag}))
    # rules go with their group; the record keeps them until the group is gone
    items = [x for x in recorded + extra if x.kind != "cloud.sg-rule"]
    items.sort(key=lambda x: (TEARDOWN_ORDER.index(x.kind), -(x.id or 10**9)))
    return items


def teardown(ctx: StepContext, items: list, *, confirmed: bool) -> tuple[list, list]:
    """Delete `items` (from teardown_plan) in order; returns (deleted, [(change, why not)])."""
    done: list = []
    failed: list = []
    ex = Executor(ctx, step="teardown")
    for kind in TEARDOWN_ORDER:
        group = [x for x in items if x.kind == kind]
        if not group:
            continue
        for x in group:
            if x.id is None:  # found by tag: record it first, so the delete is recorded against it
                ctx.record_change(x)
        d, f = ex.revert(group, keep_going=True, confirmed=confirmed)
        done += d
        failed += f
        if kind == "cloud.security-group":
            gone = {str((x.revert_data or {}).get("id")) for x in d}
            for rule in ctx.store.changes(ctx.session.id):
                if rule.kind == "cloud.sg-rule" and not rule.reverted and \
                        str((rule.revert_data or {}).get("group_id")) in gone:
                    ctx.store.mark_reverted(rule.id)
        if kind == "cloud.server" and f:
            break  # the group and the network cannot go while a server is there
    if not failed:
        ctx.store.update_session(ctx.session.name, health="torn down")
        forget_the_machines(ctx)
        ctx.reload()
    return done, failed


def forget_the_machines(ctx: StepContext) -> None:
    """Torn down, the machines are gone: every step of the Provision stage and of the stages after it
    that was done (or failed) is pending again, so the step list and `labtui up` say what is true."""
    for wid in WIZARD_ORDER[WIZARD_ORDER.index("provision"):]:
        for step_id, run in ctx.store.step_states(ctx.session.id, wid).items():
            if run.state in ("done", "failed", "running"):
                ctx.store.record_step(ctx.session.id, wid, step_id, "pending",
                                      "the lab was torn down: its machines are gone")
    # the lab is back at the Provision stage (home, `labtui sessions` and the wizard land there), not at
    # the step it was on when its machines still existed
    rec = ctx.store.get_session(ctx.session.name)
    provision = wizard_for("provision")
    if provision is not None and rec.wizard in WIZARD_ORDER[WIZARD_ORDER.index("provision"):]:
        runs = ctx.store.step_states(ctx.session.id, "provision")
        first = next((s.id for s in provision.steps
                      if not (s.id in runs and runs[s.id].state in ("done", "skipped"))), provision.steps[0].id)
        ctx.store.update_session(ctx.session.name, wizard="provision", step=first)
