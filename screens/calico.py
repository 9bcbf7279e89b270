"""The Calico screen: how Calico is installed, the IP pools with what each mode means on THIS
cluster's node subnets, the nodes with their calico-node pod, and a mode change through a
confirmation that shows the exact request. All cluster I/O runs in thread workers."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from labtui.adapters.calico import plan_change, read_cluster
from labtui.adapters.kube import kube_for
from labtui.adapters.kubeconfig import control_plane_shell
from labtui.errors import LabError
from labtui.model import Encapsulation
from labtui.net.calico import explain_pool
from labtui.pool_change import revert_pool_change, set_pool_mode
from labtui.session import LabSession
from labtui.stages.calico import remember_state

from screens.base import LabScreen, row_in_full
from screens.modals import ConfirmModal, HelpScreen, ModeSelect, PromptModal
from screens.widgets.command_log import CommandLog


HELP = """What Calico does on this cluster, read from the Kubernetes API.

The top line says how Calico was installed (the **operator** or the **calico.yaml manifest**), which
API serves its resources (`projectcalico.org/v3` through the Calico API server, or only the raw
`crd.projectcalico.org/v1` CRDs), the backend (BGP with bird, or VXLAN only) and the version.

**IP pools**: each pool's `ipipMode` / `vxlanMode`, and below the table what that mode means for the
subnets your nodes are really on. *CrossSubnet* encapsulates only between nodes on different
subnets: with every node on one subnet nothing is encapsulated, pod traffic leaves the VMs with pod
source addresses, and OpenStack's anti-spoofing drops it (the incident).

**m** changes the selected pool's encapsulation the supported way: through the operator's
Installation (JSON patch) on an operator install, else the v3 API, else `calicoctl` over SSH on the
control plane, else (only after you accept a warning) the raw v1 CRD. It is always one patch that
sets `ipipMode` and `vxlanMode` together, shown before anything is sent, and recorded with its
revert (**u** undoes the last one)."""

SEVERITY_STYLE = {"ok": "green", "info": "", "warn": "yellow", "bad": "bold red"}
SEVERITY_ICON = {"ok": "✓", "info": "·", "warn": "!", "bad": "✗"}


class StateLoaded(Message):
    def __init__(self, state: Any = None, via: str | None = None, error: str | None = None) -> None:
        super().__init__()
        self.state = state
        self.via = via
        self.error = error


class ChangePlanned(Message):
    def __init__(self, change: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.change = change
        self.error = error


class ChangeDone(Message):
    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error


class CalicoScreen(LabScreen):
    BINDINGS = [
        Binding("r", "refresh", "Refresh", id="calico.refresh"),
        Binding("m", "change_mode", "Change mode", id="calico.mode"),
        Binding("u", "revert", "Revert last change", id="calico.revert"),
        Binding("k", "kubeconfig", "Kubeconfig", id="calico.kubeconfig"),
        Binding("escape", "back", "Back", id="calico.back"),
        Binding("f1,question_mark", "help", "Help", id="calico.help"),
    ]
    FOOTER_NARROW_HIDE = ("calico.refresh",)  # r: in the help and the palette at 80 columns
    DEFAULT_CSS = """
    CalicoScreen #calico-summary { height: auto; padding: 0 1; }
    CalicoScreen #pools { height: auto; max-height: 10; }
    CalicoScreen #pool-meaning { height: auto; padding: 0 1; margin-bottom: 1; }
    CalicoScreen #nodes { height: auto; max-height: 14; }
    CalicoScreen .section { text-style: bold; padding: 0 1; }
    """

    def __init__(self, session_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_name = session_name
        self.lab: LabSession | None = None
        self.state = None
        self.via: str | None = None
        self.busy = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the cluster...", id="calico-summary")
        yield Static("IP pools", classes="section")
        yield DataTable(id="pools", cursor_type="row", zebra_stripes=True)
        yield Static("", id="pool-meaning")
        yield Static("Nodes", classes="section")
        yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = f"{self.session_name} · Calico"
        self.query_one("#pools", DataTable).add_columns("Pool", "CIDR", "IPIP", "VXLAN", "NAT", "Disabled", "Selector", "Owner")
        self.query_one("#nodes", DataTable).add_columns("Node", "Ready", "Address", "Subnet", "Pod CIDR", "Tunnel",
                                                        "calico-node", "Restarts")
        self.open_lab(self.session_name)
        self.query_one("#pools", DataTable).focus()
        self.load()

    # ------------------------------------------------------------------ engine plumbing
    @work(thread=True, exclusive=True, exit_on_error=False, group="calico")
    def load(self, refresh_kubeconfig: bool = False) -> None:
        try:
            kc = kube_for(self.lab.ctx, refresh=refresh_kubeconfig)
            state = read_cluster(kc)
            remember_state(self.lab.ctx, state)
            self.post_message(StateLoaded(state, kc.via))
        except LabError as exc:
            self.post_message(StateLoaded(error=exc.render()))

    def on_state_loaded(self, message: StateLoaded) -> None:
        summary = self.query_one("#calico-summary", Static)
        if message.error:
            summary.update(Text(message.error + "\n(k: name a kubeconfig, r: retry)", style="bold red"))
            return
        self.state, self.via = message.state, message.via
        st = self.state
        text = Text()
        text.append(f"{st.server}", style="bold")
        text.append(f"  Kubernetes {st.kubernetes_version or '?'}  ({self.via}, read in {st.read_seconds:.2f} s)\n")
        text.append(st.install.describe())
        for w in st.warnings:
            text.append(f"\n! {w}", style="yellow")
        summary.update(text)
        pools = self.query_one("#pools", DataTable)
        keep = pools.cursor_row
        pools.clear()
        for p in st.pools:
            pools.add_row(p.name, p.cidr, p.ipip_mode, p.vxlan_mode, "yes" if p.nat_outgoing else "no",
                          "yes" if p.disabled else "no", p.node_selector, p.owner or "-", key=p.name)
        if st.pools:
            pools.move_cursor(row=min(keep, len(st.pools) - 1))
        self._show_meaning()
        nodes = self.query_one("#nodes", DataTable)
        nodes.clear()
        for n in st.nodes:
            pod = n.calico_pod
            nodes.add_row(n.name, "yes" if n.ready else Text("NO", style="bold red"), n.address or "?", n.subnet or "?",
                          n.pod_cidr or "-", n.tunnel or "-",
                          (pod.name + (" ready" if pod.ready else " NOT READY")) if pod else Text("none", style="red"),
                          str(pod.restarts) if pod else "-", key=n.name)

    def _selected_pool(self):
        if self.state is None or not self.state.pools:
            return None
        row = self.query_one("#pools", DataTable).cursor_row
        if 0 <= row < len(self.state.pools):
            return self.state.pools[row]
        return None

    def _show_meaning(self) -> None:
        widget = self.query_one("#pool-meaning", Static)
        pool = self._selected_pool()
        if pool is None:
            widget.update("no IP pools" if self.state is not None else "")
            return

        m = explain_pool(pool, self.state)
        text = Text()
        text.append(f"{SEVERITY_ICON.get(m.severity, '·')} {m.summary}", style=SEVERITY_STYLE.get(m.severity, ""))
        for d in m.details:
            text.append(f"\n  {d}")
        if m.needs:
            text.append("\n  needs between the nodes: " + "; ".join(m.needs), style="dim")
        widget.update(text)

    @on(DataTable.RowHighlighted, "#pools")
    def _pool_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_meaning()

    @on(DataTable.RowHighlighted, "#nodes")
    def _node_in_full(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted node in full (the table cuts long cells at 80 columns)."""

        if event.data_table.has_focus:
            self.query_one("#pool-meaning", Static).update(row_in_full(event.data_table, event.row_key))

    # ------------------------------------------------------------------ actions
    def action_refresh(self) -> None:
        self.query_one("#calico-summary", Static).update("reading the cluster...")
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Calico", HELP, self.BINDINGS))

    def action_kubeconfig(self) -> None:
        current = (self.lab.ctx.inputs.get("kubeconfig") if self.lab else "") or ""

        def done(path: str | None) -> None:
            if path:
                self.lab.ctx.store.save_inputs(self.session_name, {"kubeconfig": path.strip()})
                self.lab.ctx.reload()
                self.lab.ctx.adapters.pop("kube")
                self.action_refresh()

        self.app.push_screen(PromptModal("Kubeconfig file for this cluster:", value=current,
                                         placeholder="~/.kube/config"), done)

    def action_change_mode(self) -> None:
        pool = self._selected_pool()
        if pool is None:
            self.notify("no IP pool selected (is the cluster read yet?)", severity="warning")
            return
        if self.busy:
            self.notify("a change is in progress", severity="warning")
            return

        def chosen(enc: Encapsulation | None) -> None:
            if enc is not None:
                self.plan_change(pool.name, enc)

        self.app.push_screen(ModeSelect(pool.name, pool.encapsulation), chosen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="calico")
    def plan_change(self, pool: str, enc: Encapsulation) -> None:
        try:
            kc = kube_for(self.lab.ctx)
            change = plan_change(kc, self.state, pool, enc, shell=control_plane_shell(self.lab.ctx))
            self.post_message(ChangePlanned(change))
        except LabError as exc:
            self.post_message(ChangePlanned(error=exc.render()))

    def on_change_planned(self, message: ChangePlanned) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=10)
            return
        change = message.change
        if change.noop:
            self.notify(f"{change.pool} already has {change.new.value}: nothing to change")
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.apply_change(change)
            else:
                self.notify("not applied")

        title = f"Change IP pool {change.pool}: {change.old.value} -> {change.new.value}?"
        note = ("Confirming accepts the warning above." if change.warning else
                "The request is sent once; labtui then waits until the pool shows the new mode.")
        self.app.push_screen(ConfirmModal(title, [change], danger=bool(change.warning), note=note), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="calico")
    def apply_change(self, change) -> None:
        self.busy = True
        try:  # the modal showed this exact change (and its warning): the executor runs it
            seen = set_pool_mode(self.lab.ctx, change, state=self.state, accept_warning=True)
            self.post_message(ChangeDone(f"{seen.name}: ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"))
        except LabError as exc:
            self.post_message(ChangeDone(exc.render(), error=True))
        finally:
            self.busy = False

    def on_change_done(self, message: ChangeDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information", timeout=8 if message.error else 4)
        self.load()

    def action_revert(self) -> None:
        if self.lab is None:
            return
        changes = [c for c in self.lab.store.changes(self.lab.record.id, include_reverted=False) if c.kind == "calico.pool-mode"]
        if not changes:
            self.notify("no Calico pool change to revert in this lab")
            return
        record = changes[-1]

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.revert_change(record)

        lines = [f"{record.description}", f"$ {record.revert_command}"]
        self.app.push_screen(ConfirmModal(f"Revert change #{record.id}?", lines, confirm_label="Revert"), confirmed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="calico")
    def revert_change(self, record) -> None:
        try:
            seen = revert_pool_change(self.lab.ctx, record)
            self.post_message(ChangeDone(f"reverted: {seen.name} ipipMode {seen.ipip_mode}, vxlanMode {seen.vxlan_mode}"))
        except LabError as exc:
            self.post_message(ChangeDone(exc.render(), error=True))
