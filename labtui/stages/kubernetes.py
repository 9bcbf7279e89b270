"""The Kubernetes stage: from nodes that answer over SSH to a kubeadm cluster whose nodes are all
registered. Runtime preflight, containerd, kubeadm/kubelet/kubectl, kubeadm init, join, admin.conf.

Every step's check reads the nodes (over SSH, through the control plane's kubectl), so a re-run, a
resume or a half-built cluster is handled; the changes are catalogue kinds (labtui.changes.kube)
that the executor runs, records and can revert. Cheap to import.
"""

from __future__ import annotations

from typing import Any

from labtui.adapters.kubeconfig import fetch_admin_conf
from labtui.adapters.ssh import kube_shell, session_ssh
from labtui.changes.kube import (
    CRI_ANSWERS,
    KUBECTL,
    cluster_nodes,
    containerd_files,
    containerd_problems,
    control_plane_state,
)
from labtui.cluster import apt
from labtui.cluster import containerd as ctd
from labtui.cluster.kubeadm import CONFIG_PATH, kubeadm_config, pause_image
from labtui.errors import LabError
from labtui.nodes.facts import load_facts
from labtui.nodes.preflight import ERROR, runtime_preflight
from labtui.paths import session_dir, write_private
from labtui.stages.nodes import findings_result, gather_and_store, saved_plan
from labtui.steps import Action, CheckResult, InputField, Risk, Step, StepContext, Wizard


def _facts(ctx: StepContext, refresh: bool = False) -> dict[str, Any]:
    """Stored node facts (gathered when missing or when `refresh`)."""
    plan = saved_plan(ctx)
    stored = load_facts(ctx.store, ctx.session.id)
    missing = [n.name for n in plan.nodes if n.name not in stored]
    if refresh or missing:
        results = gather_and_store(ctx, None if refresh else missing, step="runtime-preflight")
        bad = [r for r in results.values() if not r.ok]
        if bad:
            raise LabError("; ".join(r.message for r in bad), "check that the nodes answer (Nodes stage)", code="unreachable")
        stored = load_facts(ctx.store, ctx.session.id)
    return {n.name: stored[n.name] for n in plan.nodes if n.name in stored}


def _fan(ctx: StepContext, nodes: list[str], fn) -> tuple[dict[str, Any], dict[str, str]]:
    """fn(node) on every node in parallel -> ({node: value}, {node: error})."""
    res = session_ssh(ctx).fan_out(nodes, fn)
    return ({n: r.value for n, r in res.items() if r.ok}, {n: r.error.render() if r.error else "failed"
                                                             for n, r in res.items() if not r.ok})


def adopted(ctx: StepContext) -> str | None:
    """Why the stage does not apply: the lab uses a cluster the user already has (a kubeconfig
    named for it), so labtui builds nothing on its nodes."""
    kc = ctx.inputs.get("kubeconfig")
    if kc:
        return f"this lab uses a cluster you already have (kubeconfig {kc}): labtui does not build one"
    return None


class BuildStep(Step):
    """A step of this stage: skipped with the reason on an adopted cluster, else `build_check`."""

    def check(self, ctx: StepContext) -> CheckResult:
        why = adopted(ctx)
        if why:
            return CheckResult(False, why, skip=True)
        return self.build_check(ctx)

    def verify(self, ctx: StepContext) -> CheckResult:
        return self.build_check(ctx)

    def build_check(self, ctx: StepContext) -> CheckResult:
        raise NotImplementedError


def _recent(ctx: StepContext, key: str, compute, max_age: float = 5.0):
    """`compute()` once for a check and the plan that follows it (reality re-read after 5 s)."""
    import time

    memo = ctx.memo.bucket("kube_recent")
    hit = memo.get(key)
    if hit and time.monotonic() - hit[0] < max_age:
        return hit[1]
    value = compute()
    memo[key] = (time.monotonic(), value)
    return value


def _forget(ctx: StepContext, key: str) -> None:
    ctx.memo.bucket("kube_recent").pop(key, None)


def preflight_blocks(ctx: StepContext, nodes: list[str]) -> CheckResult | None:
    """The Runtime preflight's errors on these nodes (from their stored facts, re-read by that step),
    as a blocked check: an install on a node the preflight rejects (no systemd, cgroup v1 for 1.35+,
    an unsupported OS...) is not offered. None when nothing blocks."""
    if not nodes:
        return None
    findings = [f for f in runtime_preflight(saved_plan(ctx), _facts(ctx))
                if f.severity == ERROR and (f.node is None or f.node in nodes)]
    if not findings:
        return None
    where = sorted({f.node for f in findings if f.node}) or nodes
    lines = "; ".join((f"{f.node}: " if f.node else "") + f.title for f in findings)
    todo = [f.why.split(". ")[-1].rstrip(".") for f in findings if f.why]
    return CheckResult(
        False, f"BLOCKED by Runtime preflight on {', '.join(where)}: {lines}. Nothing is installed on "
        + ("that node" if len(where) == 1 else "those nodes") + " until it is fixed",
        {"blocked_by": "runtime-preflight", "blocked_nodes": where,
         "findings": [f.__dict__ for f in findings]}, blocked=True,
        hint=(" ".join(dict.fromkeys(t + "." for t in todo)) + " " if todo else "")
        + "Then run Runtime preflight again (or `labtui up` again: it resumes there)")


def _shown_script(nodes: list[str], script: str, note: str = "") -> str:
    target = nodes[0] if len(nodes) == 1 else "{" + ",".join(nodes) + "}"
    return (f"ssh {target} sudo sh -s <<'EOF'" + (f"   # {note}" if note else "") + f"\n{script.strip()}\nEOF")


class RuntimePreflightStep(BuildStep):
    id = "runtime-preflight"
    title = "Runtime preflight"
    why = (
        "Before anything is installed: a supported OS (Ubuntu 22.04/24.04, Debian 12/13), systemd,\n"
        "cgroup v2 (the kubelet of Kubernetes 1.35+ refuses cgroup v1 by default), kubeadm's ports free\n"
        "(6443, 10250, 2379-2380...), a containerd the plan's minor supports (2.x from 1.36), enough CPU\n"
        "and memory for each role, and a unique product_uuid and MAC per node. Nothing is changed."
    )
    hint = "fix what each finding says on the node (or pick another image or flavor), then run the step again"

    def build_check(self, ctx: StepContext) -> CheckResult:
        facts = _facts(ctx, refresh=True)
        findings = runtime_preflight(saved_plan(ctx), facts)
        return findings_result(ctx, self.id, findings, "the nodes can take a container runtime and kubeadm",
                               with_why=True)


class ContainerdStep(BuildStep):
    id = "containerd"
    title = "Container runtime (containerd)"
    why = (
        "kubeadm needs a CRI runtime. After cloud-init has finished, labtui installs containerd (the\n"
        "distribution's when apt's candidate is new enough for the plan's Kubernetes, else containerd.io\n"
        "from Docker's repository), writes its config from the node's own `containerd config default`\n"
        "with SystemdCgroup = true in the runc options table (config version 2 for containerd 1.x, 3 and\n"
        "4 for 2.x) and the pause image kubeadm expects, adds the plan's registry mirror and proxy,\n"
        "restarts it and checks that its CRI plugin answers (with ctr: crictl comes with the next step)."
    )
    hint = "the command log shows each node's output; fix the node and run the step again"

    def _status(self, ctx: StepContext, fresh: bool = False) -> tuple[list[str], dict[str, str]]:
        if fresh:
            _forget(ctx, "containerd")
        return _recent(ctx, "containerd", lambda: self._read(ctx))

    def verify(self, ctx: StepContext) -> CheckResult:
        _forget(ctx, "containerd")
        return self.build_check(ctx)

    def _read(self, ctx: StepContext) -> tuple[list[str], dict[str, str]]:
        plan = saved_plan(ctx)
        data = containerd_data(ctx)
        ok, failed = _fan(ctx, [n.name for n in plan.nodes],
                          lambda n: containerd_problems(ctx, n, plan.kubernetes, data["pause"], data))
        todo = [n for n, problems in ok.items() if problems]
        for n in todo:
            ctx.info(f"{n}: " + "; ".join(ok[n]), node=n, step=self.id)
        return todo, failed

    def build_check(self, ctx: StepContext) -> CheckResult:
        todo, failed = self._status(ctx)
        if failed:
            return CheckResult(False, "; ".join(failed.values()))
        blocked = preflight_blocks(ctx, todo)
        if blocked:
            return blocked
        if todo:
            return CheckResult(False, "containerd to install or configure on " + ", ".join(todo))
        return CheckResult(True, "containerd ready (SystemdCgroup, CRI socket answers) on every node")

    def plan(self, ctx: StepContext) -> list[Action]:
        plan = saved_plan(ctx)
        todo, failed = self._status(ctx)
        if failed:
            raise LabError("; ".join(failed.values()), "check that the nodes answer", code="unreachable")
        if not todo or preflight_blocks(ctx, todo):
            return []
        facts = _facts(ctx)
        data = containerd_data(ctx)
        data.update(nodes=todo, os={n: facts[n].os_id for n in todo}, step=self.id)
        needed = ".".join(map(str, apt.containerd_needed(plan.kubernetes)))
        shown = [f"ssh <node> sudo sh -c {_q(apt.CLOUD_INIT_WAIT)}   # cloud-init done first (exit 2 = recoverable: fine)",
                 _shown_script(todo, apt.containerd_policy_script(data["proxy"]),
                               f"only when containerd is missing or older than {needed}: the candidate decides"),
                 f"# candidate >= {needed}: the distribution's containerd",
                 _shown_script(todo, apt.containerd_install_script("distribution", "ubuntu", proxy=data["proxy"])),
                 "# else containerd.io from Docker's repository (then `containerd --version` is read again)",
                 _shown_script(todo, apt.containerd_install_script(
                     "docker", facts[todo[0]].os_id, docker_repo=data["docker_repo"], proxy=data["proxy"])),
                 f"ssh <node> containerd config default > config.toml   # the node's own defaults, then labtui "
                 f"sets SystemdCgroup = true in the runc options table and the sandbox image {data['pause']}"
                 + (f", and the CRI registry config_path = {ctd.CERTS_DIR}" if data["mirror"] else ""),
                 f"ssh <node> sudo tee {ctd.CONFIG_PATH} < config.toml"]
        for path, content in containerd_files(data).items():
            shown.append(f"ssh <node> sudo rm -f {path}" if content is None
                         else f"ssh <node> sudo tee {path} <<'EOF'\n{content.strip()}\nEOF")
        shown.append(f"ssh <node> sudo sh -c 'systemctl daemon-reload && systemctl restart containerd && "
                     f"systemctl enable containerd'\nssh <node> sudo sh -c {_q(CRI_ANSWERS)}")
        return [Action(id="containerd", title="containerd on " + ", ".join(todo), kind="ssh", target=", ".join(todo),
                       risk=Risk.CHANGE, change="kube.containerd", command="\n".join(shown),
                       revert=f"restore {ctd.CONFIG_PATH}.labtui-bak (or remove the file), remove the files labtui "
                              f"wrote, and restart containerd",
                       data=data)]


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def containerd_data(ctx: StepContext) -> dict[str, Any]:
    """What the containerd step makes true, from the plan: the pause image, the proxy, the mirror,
    Docker's repository."""
    plan = saved_plan(ctx)
    return {"minor": plan.kubernetes, "pause": pause_image(plan.kubernetes), "proxy": apt.proxy_settings(plan),
            "mirror": (plan.sources.registry_mirror or "").strip() or None,
            "docker_repo": plan.sources.docker_repo}


class PackagesStep(BuildStep):
    id = "kube-packages"
    title = "kubeadm, kubelet, kubectl"
    why = (
        "The three Kubernetes tools come from pkgs.k8s.io, one repository per minor: labtui adds its\n"
        "signing key and source, installs the plan's minor, holds the packages (`apt-mark hold`) so an\n"
        "upgrade never moves them by surprise, and enables the kubelet (it restarts in a loop until\n"
        "kubeadm init or join gives it a configuration: that is normal)."
    )
    hint = "the command log shows each node's apt output; fix the node and run the step again"

    def _todo(self, ctx: StepContext) -> tuple[list[str], dict[str, str]]:
        return _recent(ctx, "packages", lambda: self._read(ctx))

    def verify(self, ctx: StepContext) -> CheckResult:
        _forget(ctx, "packages")
        return self.build_check(ctx)

    def _read(self, ctx: StepContext) -> tuple[list[str], dict[str, str]]:
        plan = saved_plan(ctx)
        check = apt.installed_check(plan.kubernetes)
        ok, failed = _fan(ctx, [n.name for n in plan.nodes],
                          lambda n: session_ssh(ctx).run(n, check, sudo=True, timeout=60.0, stream=False).exit_code == 0)
        return [n for n, done in ok.items() if not done], failed

    def build_check(self, ctx: StepContext) -> CheckResult:
        todo, failed = self._todo(ctx)
        if failed:
            return CheckResult(False, "; ".join(failed.values()))
        blocked = preflight_blocks(ctx, todo)
        if blocked:
            return blocked
        if todo:
            return CheckResult(False, "to install on " + ", ".join(todo))
        return CheckResult(True, f"kubeadm, kubelet and kubectl {saved_plan(ctx).kubernetes} installed and held on every node")

    def plan(self, ctx: StepContext) -> list[Action]:
        plan = saved_plan(ctx)
        todo, failed = self._todo(ctx)
        if failed:
            raise LabError("; ".join(failed.values()), "check that the nodes answer", code="unreachable")
        if not todo or preflight_blocks(ctx, todo):
            return []
        proxy = apt.proxy_settings(plan)
        repo = plan.sources.kubernetes_repo
        return [Action(id="kube-packages", title=f"kubeadm, kubelet, kubectl {plan.kubernetes} on " + ", ".join(todo),
                       kind="ssh", target=", ".join(todo), risk=Risk.CHANGE, change="kube.packages",
                       command=_shown_script(todo, apt.install_script(plan.kubernetes, repo=repo, proxy=proxy),
                                             "on each node, in parallel"),
                       revert=_shown_script(todo, apt.remove_script()),
                       data={"nodes": todo, "minor": plan.kubernetes, "repo": repo, "proxy": proxy, "step": self.id})]


def init_config(ctx: StepContext) -> str:
    """The kubeadm config file for this lab's control plane."""
    plan = saved_plan(ctx)
    cp = plan.control_plane
    facts = _facts(ctx)
    f = facts.get(cp.name)
    address = (f.address if f and f.address else cp.address)
    sans = [s for s in (ctx.inputs.get("api_floating_ip"), cp.address) if s and s != address]
    version = None  # the installed kubeadm's own version (a "stable-1.36" label needs dl.k8s.io)
    try:
        res = session_ssh(ctx).run(cp.name, "kubeadm version -o short", timeout=60.0, stream=False)
        found = res.stdout.strip().lstrip("v")
        if res.exit_code == 0 and found.startswith(plan.kubernetes + "."):
            version = found
    except LabError:
        pass
    return kubeadm_config(node_name=cp.name, advertise_address=address,
                          kubernetes_version=version or f"stable-{plan.kubernetes}",
                          pod_subnet=plan.pod_cidr, service_subnet=plan.service_cidr, cert_sans=sans)


class InitStep(BuildStep):
    id = "kubeadm-init"
    title = "kubeadm init (control plane)"
    why = (
        "`kubeadm init` makes the control plane: certificates, etcd, the API server, the scheduler and\n"
        "the controller manager as static pods. labtui writes its configuration (shown in full: the\n"
        "pod and service subnets of the plan, the API address and SANs, the systemd cgroup driver) and\n"
        "streams kubeadm's output. Each preflight [ERROR ...] kubeadm prints is explained with its fix.\n"
        "A half-done earlier init is recognised and `kubeadm reset -f` is offered first."
    )
    hint = "fix what kubeadm's preflight said (each error is explained above), then run the step again"

    def build_check(self, ctx: StepContext) -> CheckResult:
        cp = saved_plan(ctx).control_plane.name
        try:
            state = control_plane_state(ctx, cp)
        except LabError as exc:
            return CheckResult(False, exc.render())
        if state == "ready":
            return CheckResult(True, f"the control plane {cp} answers (kubectl get nodes)")
        if state == "half":
            return CheckResult(False, f"{cp}: a previous kubeadm init stopped half-way (its files exist, the API "
                                      "does not answer)", {"half": True})
        return CheckResult(False, f"no control plane on {cp} yet")

    def plan(self, ctx: StepContext) -> list[Action]:
        cp = saved_plan(ctx).control_plane.name
        config = init_config(ctx)
        actions = []
        if control_plane_state(ctx, cp) == "half":
            actions.append(Action(
                id="kubeadm-reset", title=f"kubeadm reset -f on {cp} (wipes the half-done control plane)", kind="ssh",
                target=cp, risk=Risk.DESTRUCTIVE, change="kube.reset", command=f"ssh {cp} 'sudo kubeadm reset -f'",
                data={"node": cp, "step": self.id}))
        actions.append(Action(
            id="kubeadm-init", title=f"kubeadm init on {cp}", kind="ssh", target=cp, risk=Risk.CHANGE, change="kube.init",
            command=(f"ssh {cp} sudo tee {CONFIG_PATH} <<'EOF'\n{config.strip()}\nEOF\n"
                     f"ssh {cp} 'sudo kubeadm init --config {CONFIG_PATH}'"),
            revert=f"ssh {cp} 'sudo kubeadm reset -f'",
            data={"node": cp, "config": config, "step": self.id}))
        return actions


class JoinStep(BuildStep):
    id = "join"
    title = "Join the workers"
    why = (
        "Each worker joins with the command `kubeadm token create --print-join-command` prints on the\n"
        "control plane: a bootstrap token (a secret: labtui never stores or shows it) and the hash of\n"
        "the cluster CA, which lets the worker trust the API server. The workers join in parallel; one\n"
        "failing does not stop the others, and a re-run retries only the failed ones. An expired token\n"
        "is replaced by a new one."
    )
    hint = "fix the failed worker (the message says why), then run the step again: only it is retried"

    def _missing(self, ctx: StepContext) -> list[str]:
        plan = saved_plan(ctx)
        registered = cluster_nodes(ctx, plan.control_plane.name)
        return [w.name for w in plan.workers if w.name not in registered]

    def build_check(self, ctx: StepContext) -> CheckResult:
        plan = saved_plan(ctx)
        if not plan.workers:
            return CheckResult(False, "this plan has no workers", skip=True)
        missing = self._missing(ctx)  # a control plane that does not answer: cannot be checked (yet)
        if missing:
            return CheckResult(False, "not in the cluster yet: " + ", ".join(missing))
        return CheckResult(True, f"all {len(plan.workers)} worker(s) are in the cluster")

    def plan(self, ctx: StepContext) -> list[Action]:
        plan = saved_plan(ctx)
        missing = self._missing(ctx)
        if not missing:
            return []
        cp = plan.control_plane.name
        return [Action(
            id="join", title="kubeadm join " + ", ".join(missing), kind="ssh", target=", ".join(missing),
            risk=Risk.CHANGE, change="kube.join",
            command=(f"ssh {cp} 'sudo kubeadm token create --print-join-command'   # output kept in memory, not shown\n"
                     + "\n".join(f"ssh {w} sudo tee /etc/kubernetes/labtui-join.yaml   # 0600: a JoinConfiguration "
                                 f"with {cp}:6443, the token, the CA hash sha256:<hash>, name {w}\n"
                                 f"ssh {w} 'sudo sh -c \"kubeadm join --config /etc/kubernetes/labtui-join.yaml; "
                                 f"rm -f /etc/kubernetes/labtui-join.yaml\"'" for w in missing)),
            revert="\n".join(f"ssh {w} 'sudo kubeadm reset -f'" for w in missing),
            data={"nodes": missing, "control_plane": cp, "step": self.id})]


class AdminConfStep(BuildStep):
    id = "admin-conf"
    title = "The cluster's admin kubeconfig"
    why = (
        "The control plane's /etc/kubernetes/admin.conf gives cluster-admin rights. labtui copies it\n"
        "into this lab's directory (a 0600 file, never the database or the log) for the next stages,\n"
        "and shows `kubectl get nodes`. The nodes stay NotReady until Calico runs: that is next."
    )
    fields = [InputField("write_kubeconfig", "Also write a kubeconfig for you at (empty: no)", kind="path",
                         required=False, help="e.g. ~/.kube/labtui-config (0600)")]

    def _dest(self, ctx: StepContext):
        return session_dir(ctx.session.name, ctx.store.home) / "admin.conf"

    def build_check(self, ctx: StepContext) -> CheckResult:
        plan = saved_plan(ctx)
        dest = self._dest(ctx)
        nodes = cluster_nodes(ctx, plan.control_plane.name)  # no control plane yet: cannot be checked
        missing = [n.name for n in plan.nodes if n.name not in nodes]
        if missing:
            return CheckResult(False, "not in the cluster: " + ", ".join(missing))
        if not dest.exists():
            return CheckResult(False, f"admin.conf not fetched yet ({len(nodes)} node(s) registered)")
        wanted = ctx.inputs.get("write_kubeconfig")
        if wanted:
            from pathlib import Path

            p = Path(wanted).expanduser()
            if not p.exists() or p.read_bytes() != user_kubeconfig(ctx)[0]:
                return CheckResult(False, f"the kubeconfig for you is not written at {p} yet")
        ready = sum(1 for r in nodes.values() if r)
        return CheckResult(True, f"{len(nodes)} node(s) registered, {ready} Ready; admin.conf in {dest} (0600)",
                           {"nodes": sorted(nodes), "kubeconfig": str(dest)})

    def plan(self, ctx: StepContext) -> list[Action]:
        plan = saved_plan(ctx)
        cp = plan.control_plane.name
        dest = self._dest(ctx)

        def fetch(c: StepContext, a: Action) -> dict[str, Any]:
            fetch_admin_conf(kube_shell(c, cp), dest, c.emit)
            res = session_ssh(c).run(cp, f"{KUBECTL} get nodes -o wide", sudo=True, timeout=60.0, step=self.id)
            res.check("kubectl get nodes")
            wanted = c.inputs.get("write_kubeconfig")
            if wanted:
                write_user_kubeconfig(c, wanted)
            return {"kubeconfig": str(dest)}

        return [Action(id="fetch-admin-conf", title="Fetch admin.conf and show the nodes", kind="ssh", target=cp,
                       risk=Risk.LOCAL, run=fetch,
                       command=(f"ssh {cp} 'sudo cat /etc/kubernetes/admin.conf' > {dest}   # 0600, not shown\n"
                                f"ssh {cp} 'sudo {KUBECTL} get nodes -o wide'"))]


def user_kubeconfig(ctx: StepContext) -> tuple[bytes, str]:
    """(the kubeconfig for you, how to reach the API with it): the lab's admin.conf, its server rewritten to
    the control plane's floating IP when the lab has one and the group lets 6443 in from your SSH source
    (the Provision stage's `way_in`; the API certificate names the floating IP through certSANs). Without
    that, admin.conf names https://<fixed IP>:6443, reachable only from the node subnet: the note is the
    `ssh -L` tunnel to use (audit F13)."""
    import yaml


    src = session_dir(ctx.session.name, ctx.store.home) / "admin.conf"
    if not src.exists():
        raise LabError("this lab has no admin.conf yet", "run the Kubernetes stage's last step first", code="kubeconfig")
    raw = src.read_bytes()
    cp = saved_plan(ctx).control_plane
    way_in = ctx.store.facts(ctx.session.id, "provision").get("provision", {}).get("way_in") or {}
    fip, api_cidr = way_in.get("floating_ip"), way_in.get("api_cidr")
    if fip and api_cidr:
        try:
            conf = yaml.safe_load(raw)
            for cluster in conf.get("clusters") or []:
                cluster["cluster"]["server"] = f"https://{fip}:6443"
        except (yaml.YAMLError, AttributeError, KeyError, TypeError):
            raise LabError("the lab's admin.conf is not a kubeconfig labtui can read",
                           "fetch it again (the Kubernetes stage's last step)", code="kubeconfig") from None
        return (yaml.safe_dump(conf, sort_keys=False).encode(),
                f"it talks to https://{fip}:6443 (the floating IP; the security group lets 6443 in from {api_cidr})")
    if not (cp.ssh_host or cp.proxy_jump):  # the node subnet is routed to you: admin.conf works as it is
        return raw, f"it talks to https://{cp.address}:6443 (the control plane on the node subnet)"
    via = f"{cp.user}@{cp.ssh_host}" if cp.ssh_host else f"-J {cp.proxy_jump} {cp.user}@{cp.address}"
    key = f"-i {cp.key_file} " if cp.key_file else ""
    return raw, (f"it names https://{cp.address}:6443, which your machine does not reach: open a tunnel first, "
                 f"`ssh {key}-N -L 6443:{cp.address}:6443 {via}`, then use "
                 "`kubectl --server https://127.0.0.1:6443 --tls-server-name kubernetes` (the API certificate "
                 "names `kubernetes`, not 127.0.0.1)")


def write_user_kubeconfig(ctx: StepContext, path: str) -> str:
    """Write the kubeconfig for you (user_kubeconfig) to `path` (0600) when the user asked for it."""
    from pathlib import Path


    data, how = user_kubeconfig(ctx)
    dest = Path(path).expanduser()
    if dest.is_dir():
        raise LabError(f"{dest} is a directory", "give a file path, e.g. ~/.kube/labtui-config", code="kubeconfig")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)  # ~/.kube may not exist yet
        write_private(dest, data)
    except OSError as exc:
        raise LabError(f"cannot write {dest}: {exc.strerror or exc}", "choose a path you can write", code="kubeconfig") from None
    ctx.info(f"wrote the cluster's kubeconfig to {dest} (0600): export KUBECONFIG={dest}; {how}")
    return str(dest)


def build() -> Wizard:
    return Wizard("kubernetes", "Kubernetes", [RuntimePreflightStep(), ContainerdStep(), PackagesStep(), InitStep(),
                                               JoinStep(), AdminConfStep()])
