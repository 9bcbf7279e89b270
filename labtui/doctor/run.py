"""The doctor on a lab session: gather (in parallel), prove live, diagnose, remember, fix, re-check.

`run_doctor(ctx)` is what the wizard step, the screen and `labtui doctor NAME` call. Where the
sources come from:
- nodes: the session's plan (or the nodes given to `labtui doctor --adopt`);
- Kubernetes: `labtui.adapters.kube.kube_for(ctx, kubeconfig)` (a kubeconfig named by the user, the
  session's admin.conf, or one fetched from the control plane over SSH);
- the cloud: the session's cloud name, through `labtui.adapters.openstack`.

`apply_fix(ctx, diag, option)` turns a FixOption into steps.Actions (security groups, then ports,
then the Calico switch), asks for confirmation, runs them through the adapters, records every
change with its revert, then runs the doctor again so the user sees the finding gone.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from labtui import events as ev
from labtui.doctor.findings import Diagnosis, FixAction, FixOption
from labtui.doctor.gather import calico_settings_reader, cloud_support_reader, gather, primary_address
from labtui.doctor.matrix import attach_causes, clip_words
from labtui.doctor.fixes import ordered_actions
from labtui.doctor.model import DoctorFacts, Unchecked, active_pools
from labtui.doctor.probe import run_live_proof
from labtui.doctor.reason import diagnose
from labtui.changes.openstack import action_for
from labtui.errors import LabError
from labtui.events import Event
from labtui.model import Encapsulation, NodeSpec, Plan
from labtui.paths import session_dir
from labtui.steps import Action, StepContext

DOCTOR_SCOPE = "doctor"


# --------------------------------------------------------------------------- sources of a session


def plan_nodes(ctx: StepContext) -> list[Any]:
    plan = ctx.session.plan or {}
    return [NodeSpec.model_validate(n) for n in plan.get("nodes", [])]


def cloud_name(ctx: StepContext) -> str | None:
    return ctx.session.cloud_name


def _kube_reader(ctx: StepContext, kubeconfig: str | None,
                 seen: dict[str, Any] | None = None) -> Callable[[], Any] | None:
    have = kubeconfig or ctx.inputs.get("kubeconfig") or (session_dir(ctx.session.name, ctx.store.home) / "admin.conf").exists() \
        or plan_nodes(ctx)
    if not have:
        return None

    def read() -> Any:
        from labtui.adapters.calico import read_cluster
        from labtui.adapters.kube import kube_for

        kc = kube_for(ctx, kubeconfig)
        try:
            state = read_cluster(kc)
            if seen is not None:
                seen["state"] = state
                try:  # the service CIDR and kubeadm's own view (optional: missing or forbidden is fine)
                    seen["kubeadm"] = kc.read_configmap("kube-system", "kubeadm-config")
                except LabError:
                    seen["kubeadm"] = None
            return state
        except LabError as exc:
            if kc.via is None and kc.forwarder is not None and kc.server not in exc.message:
                # the API did not answer directly and the SSH tunnel through the control plane failed
                raise LabError(f"the Kubernetes API {kc.server} does not answer from here, and the SSH tunnel through "
                               f"the control plane failed too ({exc.message})",
                               "check the kubeconfig's server address, or the control plane's SSH access "
                               f"({exc.hint or 'see the command log'})", code=exc.code) from exc
            raise

    return read


def _cloud_reader(ctx: StepContext, nodes: list[Any]) -> Callable[[list[Any]], Any] | None:
    name = cloud_name(ctx)
    if not name:
        return None

    def read(which: list[Any]) -> Any:
        from labtui.adapters.openstack import discover_by_address

        return discover_by_address(cloud_service(ctx, name), which)

    def prepare() -> None:  # gather imports the cloud's SDK first (see labtui.doctor.gather)
        from labtui.adapters.openstack import load_sdk

        load_sdk()

    read.prepare = prepare  # type: ignore[attr-defined]
    return read


def cloud_service(ctx: StepContext, name: str) -> Any:
    """The session's CloudConnection (ctx.adapters.cloud, shared with labtui.adapters.openstack's steps)."""
    from labtui.adapters import openstack as cloud

    return cloud.session_cloud(ctx, name)


class NodeShell:
    """A labtui.adapters.kubeconfig / labtui.doctor.probe Shell on one node through the session's NodeSSH (with sudo)."""

    def __init__(self, ssh: Any, node: str, sudo: bool = True) -> None:
        self.ssh = ssh
        self.node = node
        self.sudo = sudo

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]:
        res = self.ssh.run(self.node, command, sudo=self.sudo, timeout=timeout, stream=False)
        return res.exit_code, res.stdout, res.stderr


def _stored_node_facts(ctx: StepContext) -> dict[str, dict[str, Any]]:
    """What labtui.nodes.facts stored for each node (used when SSH cannot reach a node now)."""
    try:
        from labtui.nodes.facts import load_facts
    except ImportError:  # pragma: no cover
        return {}
    out = {}
    for name, f in load_facts(ctx.store, ctx.session.id).items():
        if f.interface and f.iface_cidr:
            out[name] = {"addresses": [(f.interface, f.iface_cidr)], "default_dev": f.interface,
                         "ipip": f.ipip_module, "tools": set(), "stored": f.gathered}
    return out


# --------------------------------------------------------------------------- the run


def gather_session(ctx: StepContext, *, kubeconfig: str | None = None, live: bool = True,
                   ssh_timeout: float = 20.0, only_cells: set[str] | None = None) -> DoctorFacts:
    nodes = plan_nodes(ctx)
    seen: dict[str, Any] = {}
    ssh = None
    if nodes:
        from labtui.adapters.ssh import session_ssh

        ssh = session_ssh(ctx)
    facts = gather(
        plan_nodes=nodes,
        cluster_name=ctx.session.name,
        cloud_name=cloud_name(ctx),
        read_cluster=_kube_reader(ctx, kubeconfig, seen),
        read_cloud=_cloud_reader(ctx, nodes),
        ssh=ssh,
        emit=ctx.emit,
        ssh_timeout=ssh_timeout,
        read_cluster_extras=calico_settings_reader(ctx, kubeconfig),
        read_cloud_support=cloud_support_reader(ctx),
    )
    _fill_from_stored(ctx, facts)
    if kubeconfig and facts.sources.get("kube"):  # the adapter writes no store: the lab remembers it here
        ctx.remember_kubeconfig(kubeconfig)
    if facts.sources.get("kube") and "state" in seen:
        ctx.memo.doctor_cluster = seen["state"]  # what the Calico switches of the fix options are planned on
        reconcile_live(ctx, live_values(facts, seen["state"], seen.get("kubeadm")))
    if live:
        live_proof(ctx, facts, ssh, only_cells=only_cells)
    facts.timings["finished"] = time.time()
    return facts


LIVE_SCOPE = "live"
LIVE_NAMES = {"pod_cidr": "pod CIDR", "service_cidr": "service CIDR", "encapsulation": "encapsulation",
              "node_subnet": "node subnet", "kubernetes": "Kubernetes version", "calico": "Calico version"}


def live_values(facts: DoctorFacts, state: Any, kubeadm_cm: dict[str, Any] | None) -> dict[str, Any]:
    """What the live cluster says about the values a plan holds, each with where it was read."""
    import ipaddress

    out: dict[str, Any] = {}
    src: dict[str, str] = {}
    pools = active_pools(facts)
    if pools:
        out["pod_cidr"] = pools[0].cidr
        src["pod_cidr"] = f"IP pool {pools[0].name}"
        modes = (pools[0].ipip_mode.replace("Off", "Never"), pools[0].vxlan_mode)
        if modes in {e.pool_modes for e in Encapsulation}:
            out["encapsulation"] = Encapsulation.from_pool_modes(*modes).value
            src["encapsulation"] = f"IP pool {pools[0].name} ({pools[0].modes})"
    cfg: dict[str, Any] = {}
    text = ((kubeadm_cm or {}).get("data") or {}).get("ClusterConfiguration")
    if text:
        try:
            import yaml

            cfg = yaml.safe_load(text) or {}
        except Exception:
            cfg = {}
    net = cfg.get("networking") or {}
    if net.get("serviceSubnet"):
        out["service_cidr"] = str(net["serviceSubnet"]).split(",")[0]
        src["service_cidr"] = "ConfigMap kube-system/kubeadm-config (networking.serviceSubnet)"
    if net.get("podSubnet") and "pod_cidr" not in out:
        out["pod_cidr"] = str(net["podSubnet"]).split(",")[0]
        src["pod_cidr"] = "ConfigMap kube-system/kubeadm-config (networking.podSubnet)"
    version = getattr(state, "kubernetes_version", None) or cfg.get("kubernetesVersion")
    if version:
        out["kubernetes"] = str(version).lstrip("v")
        src["kubernetes"] = "the API server's /version"
    if facts.calico.version:
        out["calico"] = str(facts.calico.version).lstrip("v")
        src["calico"] = "Calico's install (" + (facts.calico.install_mode or "?") + ")"
    subnets = []
    for n in facts.nodes:
        cidr = n.calico_cidr or n.iface_cidr
        if cidr and "/" in cidr:
            try:
                subnets.append(str(ipaddress.ip_interface(cidr).network))
            except ValueError:
                pass
    if subnets:
        uniq = list(dict.fromkeys(subnets))
        out["node_subnet"] = uniq[0] if len(uniq) == 1 else ", ".join(uniq)
        src["node_subnet"] = "the nodes' addresses (Calico's IPv4Address or the interface)"
    return {"values": out, "sources": src}


def _same_value(key: str, a: Any, b: Any) -> bool:
    import ipaddress

    if key in ("pod_cidr", "service_cidr", "node_subnet"):
        try:
            return ipaddress.ip_network(str(a), strict=False) == ipaddress.ip_network(str(b), strict=False)
        except ValueError:
            return str(a) == str(b)
    if key in ("kubernetes", "calico"):  # "1.23" agrees with "1.23.6"
        x, y = str(a).lstrip("v"), str(b).lstrip("v")
        return x == y or y.startswith(x + ".") or x.startswith(y + ".")
    return str(getattr(a, "value", a)) == str(getattr(b, "value", b))


def reconcile_live(ctx: StepContext, live: dict[str, Any]) -> list[str]:
    """An adopted lab takes every value the live cluster knows into its plan (it had defaults);
    a lab labtui built keeps its plan, and each disagreement is said. Stored under the `live` facts."""
    values, sources = live.get("values") or {}, live.get("sources") or {}
    plan = dict(ctx.session.plan or {})
    adopted = bool(ctx.inputs.get("adopted"))
    notes: list[str] = []
    disagree: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        had = plan.get(key)
        if had in (None, "") or _same_value(key, had, value):
            continue
        disagree[key] = {"plan": getattr(had, "value", had), "live": value}
        what = LIVE_NAMES.get(key, key)
        if adopted:
            notes.append(f"{what}: {value} (read from {sources.get(key, 'the cluster')}; the adopted plan had the "
                         f"default {disagree[key]['plan']})")
        else:
            notes.append(f"the plan says {what} {disagree[key]['plan']}, the live cluster {value} "
                         f"(from {sources.get(key, 'the cluster')})")
    updated = False
    if adopted and plan:
        new = dict(plan)
        for key, value in values.items():
            if key == "node_subnet" and "," in str(value):
                continue  # several subnets: the plan keeps the covering one
            new[key] = ".".join(str(value).split(".")[:2]) if key == "kubernetes" else value  # a plan holds the minor
        parsed = None
        for drop in ((), ("kubernetes", "calico")):  # versions labtui does not offer stay as they were
            try:
                parsed = Plan.parse({**new, **{k: plan.get(k) for k in drop if k in plan}}).model_dump(mode="json")
                break
            except (LabError, ValueError) as exc:
                why = getattr(exc, "message", None) or str(exc)
        if parsed is None:
            notes.append(f"the live values do not make a valid plan ({why}); the plan is kept, the live values are "
                         f"stored beside it")
        elif parsed != plan:
            ctx.store.update_session(ctx.session.name, plan=parsed)
            updated = True
    for line in notes:
        ctx.emit(Event(ev.INFO if adopted else ev.WARN, f"live cluster: {line}"))
    # an adopted plan's defaults replaced by live values: kept across runs (the report tells them)
    before = ctx.store.facts(ctx.session.id, LIVE_SCOPE).get(LIVE_SCOPE, {}).get(LIVE_SCOPE) or {}
    replaced = dict(before.get("replaced") or {})
    if updated:
        replaced.update({k: v for k, v in disagree.items() if k not in replaced})
    ctx.store.put_facts(ctx.session.id, LIVE_SCOPE, {"live": {"values": values, "sources": sources,
                                                              "disagree": disagree, "adopted": adopted,
                                                              "replaced": replaced, "plan_updated": updated,
                                                              "read_at": time.time()}})
    if updated:
        ctx.reload()
    return notes


def _fill_from_stored(ctx: StepContext, facts: DoctorFacts) -> None:
    stored = None
    for n in facts.nodes:
        if n.iface_cidr is None:
            stored = stored if stored is not None else _stored_node_facts(ctx)
            probe = stored.get(n.name)
            if probe:
                n.iface, n.iface_cidr = primary_address(probe, [n.address])
                if n.ipip_module is None:
                    n.ipip_module = probe.get("ipip")
                ctx.emit(Event(ev.INFO, f"{n.name}: interface {n.iface_cidr} from the node facts stored earlier"))


def live_proof(ctx: StepContext, facts: DoctorFacts, ssh: Any | None, *, only_cells: set[str] | None = None) -> None:
    """The matrix and the capture, when the cluster and the control plane over SSH are reachable.
    Every cell lands in `facts.cells` (labtui.doctor.matrix.Cell); the cross-node ICMP ones in
    `facts.matrix` for the reasoning. `only_cells`: re-run just these (doctor --failed)."""
    if not facts.sources.get("kube"):
        return
    if ssh is None or not facts.sources.get("ssh"):
        facts.unchecked.append(Unchecked("matrix", "pod-to-pod connectivity (live)",
                                         "labtui has no SSH access to the nodes of this lab",
                                         "give the nodes (plan or --nodes/--inventory) to run probe pods"))
        return
    cp = next((n for n in facts.nodes if n.role == "control-plane"), None)
    if cp is None:
        return
    failed = {u.source for u in facts.unchecked}
    if f"ssh:{cp.name}" in failed:
        facts.unchecked.append(Unchecked("matrix", "pod-to-pod connectivity (live)",
                                         f"the control plane {cp.name} does not answer over SSH"))
        return
    pools = active_pools(facts)
    shell = NodeShell(ssh, cp.name)
    proof = run_live_proof(
        shell, [n.name for n in facts.nodes],
        kubectl="kubectl --kubeconfig /etc/kubernetes/admin.conf",
        capture_shell=NodeShell(ssh, cp.name), capture_iface=cp.iface or "any",
        pod_cidr=pools[0].cidr if pools else None, emit=ctx.emit,
        simulated=bool(ctx.tuning.simulated), only=only_cells,
        ttl=int(getattr(ctx.tuning, "probe_ttl", 0) or 300),
    )
    facts.matrix = proof.matrix
    facts.cells = proof.cells  # type: ignore[attr-defined]  # not a DoctorFacts field: see remember()
    if proof.capture is not None:
        facts.captures.append(proof.capture)
    facts.unchecked.extend(proof.unchecked)
    facts.timings["live"] = round(proof.seconds, 3)


def run_doctor(ctx: StepContext, *, kubeconfig: str | None = None, live: bool = True,
               facts: DoctorFacts | None = None, only_cells: set[str] | None = None) -> Diagnosis:
    """Gather (unless facts are given), diagnose, remember the result in the session.
    `diag.cells`: every cell of the live matrix, each failing one with its cause from the reasoning."""
    if facts is None:
        facts = gather_session(ctx, kubeconfig=kubeconfig, live=live, only_cells=only_cells)
    diag = diagnose(facts)
    plan_calico_switches(ctx, diag)
    diag.cells = attach_causes(diag, getattr(facts, "cells", None) or [])  # type: ignore[attr-defined]
    remember(ctx, diag)
    for f in diag.findings:
        ctx.emit(Event(ev.WARN if f.severity in ("error", "warning") else ev.INFO,
                       f"doctor: [{f.severity}] {f.title}", data={"finding": f.id, "pairs": f.pairs}))
    for u in diag.unchecked:
        ctx.emit(Event(ev.WARN, f"doctor: {u.line()}"))
    ctx.emit(Event(ev.INFO, f"doctor: {diag.status}"))
    return diag


def plan_calico_switches(ctx: StepContext, diag: Diagnosis) -> None:
    """Plan the Calico switch of every possible fix option against the live cluster now (the supported
    way: the operator's Installation, the v3 API, calicoctl or the CRD), so an option shows the command
    its confirmation shows and the executor runs. (An option's cloud changes show theirs already: their
    Actions are built from the option's own fixes.) Cannot plan it: the option keeps the doctor's
    reading of the facts, and applying it says why."""
    switches = [fa for o in diag.options if o.available for fa in o.actions if fa.fix is None]
    if not switches or not diag.facts.sources.get("kube"):
        return
    for fa in switches:
        try:
            act = _calico_action(ctx, fa, False)
        except LabError:
            continue
        fa.command, fa.revert = act.command, act.revert or fa.revert


def summary_line(diag: Diagnosis) -> str:
    if diag.exit_code == 0:
        ok = sum(1 for v in diag.verdicts if v.ok)
        return f"healthy: {ok} of {len(diag.verdicts)} pod paths pass"
    if diag.exit_code == 1:
        return f"{len(diag.problems)} finding(s): " + "; ".join(f.title for f in diag.problems[:2])
    failed = [u for u in diag.blocked_sources or diag.unchecked if not u.skipped]
    skipped = [u for u in diag.unchecked if u.skipped]
    text = ("could not check: " + "; ".join(u.what for u in failed) if failed
            else "no verdict on pod traffic without the live proof")
    if skipped:
        text += "; skipped (do not apply): " + "; ".join(u.what for u in skipped)
    return clip_words(text, 200)


def remember(ctx: StepContext, diag: Diagnosis) -> None:
    data = diag.to_dict()
    data["ran_at"] = time.time()
    data["cells"] = [c.to_dict() for c in getattr(diag, "cells", None) or []]
    stored = ctx.store.facts(ctx.session.id, DOCTOR_SCOPE).get(DOCTOR_SCOPE, {})
    history = list(stored.get("history") or [])
    history.append({"ts": time.time(), "status": diag.status, "exit_code": diag.exit_code, "summary": summary_line(diag)})
    values: dict[str, Any] = {"last": data, "history": history[-50:]}
    if "first" not in stored:
        values["first"] = data
    ctx.store.put_facts(ctx.session.id, DOCTOR_SCOPE, values)
    ctx.store.update_session(ctx.session.name, health=clip_words(f"doctor: {summary_line(diag)}", 120))  # never mid-word
    ctx.reload()


def last_diagnosis(ctx_or_store: Any, session_id: int | None = None) -> dict[str, Any] | None:
    store = getattr(ctx_or_store, "store", ctx_or_store)
    sid = session_id if session_id is not None else ctx_or_store.session.id
    return store.facts(sid, DOCTOR_SCOPE).get(DOCTOR_SCOPE, {}).get("last")


# --------------------------------------------------------------------------- fixes


def fix_actions(ctx: StepContext, diag: Diagnosis, option: FixOption, *, accept_crd_warning: bool = False) -> list[Action]:
    """The change catalogue's Actions for a fix option (security groups, then ports, then Calico:
    the executor keeps that order). An OpenStack change is built from the option's own fix, so its
    command is the one the option shows."""
    out: list[Action] = []
    for fa in ordered_actions(option):
        if fa.fix is None:  # the Calico switch: planned against the live cluster
            out.append(_calico_action(ctx, fa, accept_crd_warning))
            continue
        act = action_for(fa.fix, action_id=fa.id)
        act.title = fa.title  # the doctor's words for it (which node, what it merges with)
        out.append(act)
    return out


def _calico_action(ctx: StepContext, fa: FixAction, accept_crd_warning: bool) -> Action:
    """The exact change labtui.adapters.calico will make (operator Installation, v3 API, calicoctl or CRD)."""
    from labtui.adapters.calico import plan_change, read_cluster
    from labtui.adapters.kube import kube_for
    from labtui.adapters.kubeconfig import control_plane_shell
    from labtui.changes.calico import pool_action

    try:
        kc = kube_for(ctx, ctx.inputs.get("kubeconfig"))
        state = ctx.memo.doctor_cluster or read_cluster(kc)
        ctx.memo.doctor_cluster = state
        target = Encapsulation.from_pool_modes(fa.params["ipipMode"], fa.params["vxlanMode"])
        shell = control_plane_shell(ctx)
        change = plan_change(kc, state, fa.params["pool"], target, shell=shell)
    except LabError as exc:
        raise LabError(f"cannot plan the Calico change for pool {fa.params.get('pool')}: {exc.message}",
                       exc.hint or "run the doctor again when the cluster answers", code=exc.code) from exc
    act = pool_action(change, accept_warning=accept_crd_warning or not change.warning, shell=shell, state=state)
    if change.warning:
        act.title = f"{change.description} [WARNING: {change.warning}]"
        act.data["accept_warning"] = True  # confirming the red dialog (or --yes with the warning shown) accepts it
    return act


def apply_fix(
    ctx: StepContext,
    diag: Diagnosis,
    option: FixOption | str | int,
    *,
    confirm: Callable[[list[Action]], bool] | None = None,
    accept_crd_warning: bool = False,
    recheck: bool = True,
    kubeconfig: str | None = None,
    live: bool = True,
    actions: list[Action] | None = None,
) -> tuple[list[Action], Diagnosis | None]:
    """Preview -> confirm -> apply in the safe order -> record -> re-run the doctor.

    `actions` are the ones already shown to the user (the UI prepares them, shows them in its
    ConfirmModal and passes them back with `confirm=lambda a: True`).
    Returns the actions and the new diagnosis (None when not confirmed)."""
    opt = option if isinstance(option, FixOption) else diag.option(option)
    if not opt.available:
        raise LabError(f"fix option {opt.number} ({opt.title}) is not possible here: {opt.unavailable_reason}",
                       "choose another option (labtui doctor NAME lists them)")
    if actions is None:
        actions = fix_actions(ctx, diag, opt, accept_crd_warning=accept_crd_warning)
    from labtui.execute import Executor, ExecutionStopped

    ctx.emit(Event(ev.STEP_START, f"fix option {opt.number}: {opt.title}", step="doctor-fix"))
    try:
        execution = Executor(ctx, step="doctor-fix", confirm=confirm).run(actions)
    except ExecutionStopped as exc:
        raise LabError(f"fix option {opt.number}: {exc.message}", exc.hint, code=exc.code) from exc
    finally:
        ctx.memo.doctor_cluster = None
    if not execution.confirmed:
        ctx.emit(Event(ev.WARN, f"fix option {opt.number} not applied: not confirmed"))
        return actions, None
    ctx.emit(Event(ev.INFO, f"fix option {opt.number}: {execution.summary()}", step="doctor-fix"))
    if not recheck:
        return actions, None
    after = run_doctor(ctx, kubeconfig=kubeconfig, live=live)
    ctx.emit(Event(ev.STEP_DONE, f"fix option {opt.number} applied; the doctor now says: {after.status}", step="doctor-fix"))
    return actions, after
