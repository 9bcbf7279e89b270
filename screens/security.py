"""The Security screen: the lab's nodes with their Neutron ports and groups, every requirement the
cloud must meet (with what requires it and what meets it), the groups' rules (with what requires
each), and fixes through a confirmation that lists the exact `openstack ...` commands and API calls.
All cloud I/O runs in thread workers; every API call appears in the command log."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from labtui.changes.openstack import port_security_actions
from labtui.errors import LabError
from labtui.execute import ExecutionStopped, Executor
from labtui.session import LabSession
from labtui.stages.cloud import check, plan_fixes

from screens.base import LabScreen, row_in_full
from screens.modals import ConfirmModal, HelpScreen
from screens.widgets.command_log import CommandLog


HELP = """What your OpenStack cloud lets through between the lab's nodes, and what it must.

**Nodes** shows each node of the plan as the cloud has it: its server, its Neutron port (fixed IP,
subnet), port security, security groups and allowed-address-pairs. A node that is not a server of
this cloud is listed as such.

**Requirements** are derived from the Calico encapsulation (IPIP or VXLAN, Always or CrossSubnet, or
none), BGP, Typha and the node roles, each with its reason (the line under the tables). Each one is
*satisfied* (and by which rule: exact, any-protocol from the group, or a prefix that covers every
node), *missing* (red) or *suspicious* (yellow): a rule with protocol `ipip` (older iptables-driver
clouds render it as protocol 94 and drop Calico's protocol 4), a prefix that misses some nodes, or
egress rules removed.

**Rules** lists every rule of the nodes' groups and which requirement needs it.

**f** fixes the highlighted requirement, **a** fixes all of them: a confirmation lists the exact
commands and API calls first. Rules are created in the nodes' group from the group itself, with
protocol `4` (never `ipip`); the pod CIDR is merged into each port's allowed-address-pairs (Neutron
replaces the whole list, labtui keeps what is there). **p** disables port security on the
highlighted node's port: the last resort, it removes every group and pair from the port.
**u** reverts the last OpenStack change. Every change is recorded with its revert."""

STATUS_STYLE = {"satisfied": "green", "missing": "bold red", "suspicious": "bold yellow"}
STATUS_ICON = {"satisfied": "✓", "missing": "✗", "suspicious": "!"}


class ReportLoaded(Message):
    def __init__(self, report: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.report = report
        self.error = error


class FixDone(Message):
    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error


class SecurityScreen(LabScreen):
    BINDINGS = [
        Binding("r", "refresh", "Refresh", id="security.refresh"),
        Binding("f", "fix_one", "Fix this", id="security.fix"),
        Binding("a", "fix_all", "Fix all", id="security.fix_all"),
        Binding("p", "port_security", "Port security off", id="security.port_security"),
        Binding("u", "revert", "Revert last change", id="security.revert"),
        Binding("escape", "back", "Back", id="security.back"),
        Binding("f1,question_mark", "help", "Help", id="security.help"),
    ]
    FOOTER_NARROW_HIDE = ("security.refresh", "security.port_security")
    DEFAULT_CSS = """
    SecurityScreen #sec-body { height: 1fr; }
    SecurityScreen CommandLog { height: 8; }
    SecurityScreen.-short CommandLog { height: 5; }
    SecurityScreen #sec-summary { height: auto; padding: 0 1; }
    SecurityScreen #sec-nodes { height: auto; max-height: 8; }
    SecurityScreen #sec-reqs { height: auto; max-height: 15; }
    SecurityScreen #sec-rules { height: auto; max-height: 10; }
    SecurityScreen #sec-detail { height: auto; max-height: 8; padding: 0 1; }
    SecurityScreen .section { text-style: bold; padding: 0 1; }
    """

    def __init__(self, session_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_name = session_name
        self.lab: LabSession | None = None
        self.report = None
        self.busy = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sec-body"):  # the log and the footer stay on screen at 80x24
            yield Static("connecting to the cloud...", id="sec-summary")
            yield Static("Nodes and ports", classes="section")
            yield DataTable(id="sec-nodes", cursor_type="row", zebra_stripes=True)
            yield Static("Requirements", classes="section")
            yield DataTable(id="sec-reqs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="sec-detail")
            yield Static("Rules of the nodes' groups", classes="section")
            yield DataTable(id="sec-rules", cursor_type="row", zebra_stripes=True)
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = f"{self.session_name} · Security groups"
        self.query_one("#sec-nodes", DataTable).add_columns(
            "Node", "Role", "Server", "Port", "Fixed IP", "Subnet", "Port security", "Groups", "Allowed pairs")
        self.query_one("#sec-reqs", DataTable).add_columns("Status", "Requirement", "Required by", "Met by / problem")
        self.query_one("#sec-rules", DataTable).add_columns("Group", "Rule", "Required by")
        self.open_lab(self.session_name)
        self.query_one("#sec-reqs", DataTable).focus()
        self.load()

    # ------------------------------------------------------------------ engine plumbing
    @work(thread=True, exclusive=True, exit_on_error=False, group="security-read")
    def load(self) -> None:
        try:
            self.post_message(ReportLoaded(check(self.lab.ctx)))
        except LabError as exc:
            self.post_message(ReportLoaded(error=exc.render()))

    def on_report_loaded(self, message: ReportLoaded) -> None:
        summary = self.query_one("#sec-summary", Static)
        if message.error:
            summary.update(Text(message.error + "\n(r: retry)", style="bold red"))
            return
        self.report = report = message.report
        lab = report.lab
        text = Text()
        text.append(f"cloud {lab.cloud}", style="bold")
        text.append(f"  {report.networking.describe()}")
        if report.networking.pod_cidr:
            text.append(f", pod CIDR {report.networking.pod_cidr}")
        text.append("\n")
        text.append(("✓ " if report.ok else "✗ ") + report.summary(), style="green" if report.ok else "bold red")
        for note in lab.notes:
            text.append(f"\n! {note}", style="yellow")
        summary.update(text)
        groups = lab.groups_by_id

        nodes = self.query_one("#sec-nodes", DataTable)
        nodes.clear()
        for n in lab.nodes:
            p = n.port
            if not n.found or p is None:
                nodes.add_row(n.name, n.role, Text(n.note or "not found", style="yellow"), "", n.address or "", "", "",
                              "", "", key=n.name)
                continue
            nodes.add_row(
                n.name, n.role, n.server_name or "(no server)", p.label, n.ip or "?", p.subnet_cidr or "?",
                "on" if p.port_security_enabled else Text("OFF", style="bold yellow"),
                ", ".join(groups[g].label if g in groups else g[:8] for g in p.security_group_ids) or "-",
                ", ".join(a.get("ip_address", "") for a in p.allowed_address_pairs) or "-", key=n.name)

        reqs = self.query_one("#sec-reqs", DataTable)
        keep = reqs.cursor_row
        reqs.clear()
        for s in report.statuses:
            style = STATUS_STYLE[s.status]
            met = "; ".join(m.text for m in s.via[:2]) if s.ok else s.detail
            reqs.add_row(Text(f"{STATUS_ICON[s.status]} {s.status}", style=style),
                         Text(s.requirement.title, style="" if s.ok else style), s.requirement.required_by,
                         Text(met[:140], style="" if s.ok else style), key=s.requirement.id)
        if report.statuses:
            reqs.move_cursor(row=min(max(keep, 0), len(report.statuses) - 1))

        required_by: dict[str, list[str]] = {}
        for s in report.statuses:
            for m in s.via:
                if m.rule_id:
                    required_by.setdefault(m.rule_id, []).append(s.requirement.id)
        rules = self.query_one("#sec-rules", DataTable)
        rules.clear()
        for g in lab.groups:
            for r in g.rules:
                style = "bold yellow" if r.protocol == "ipip" else ""
                rules.add_row(g.label, Text(r.describe(groups), style=style),
                              ", ".join(required_by.get(r.id, [])) or "-", key=f"{g.id}/{r.id}")
        self._show_detail()

    def _selected(self):
        if self.report is None or not self.report.statuses:
            return None
        row = self.query_one("#sec-reqs", DataTable).cursor_row
        return self.report.statuses[row] if 0 <= row < len(self.report.statuses) else None

    def _show_detail(self) -> None:
        widget = self.query_one("#sec-detail", Static)
        s = self._selected()
        if s is None:
            widget.update("")
            return
        text = Text()
        text.append(f"{s.requirement.title}: ", style="bold")
        text.append(s.requirement.reason)
        if not s.ok:
            text.append(f"\n{s.status}: {s.detail}", style=STATUS_STYLE[s.status])
            for f in s.fixes:
                text.append(f"\nfix: $ {f.command()}", style="dim")
        if s.unknown:
            text.append(f"\nnot checked (not in this cloud): {', '.join(s.unknown)}", style="yellow")
        widget.update(text)

    @on(DataTable.RowHighlighted, "#sec-nodes")
    @on(DataTable.RowHighlighted, "#sec-rules")
    def _row_in_full(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted node or rule in full under the tables (their cells are cut at 80 columns)."""

        if event.data_table.has_focus:
            self.query_one("#sec-detail", Static).update(row_in_full(event.data_table, event.row_key))

    @on(DataTable.RowHighlighted, "#sec-reqs")
    def _req_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    # ------------------------------------------------------------------ actions
    def action_refresh(self) -> None:
        self.query_one("#sec-summary", Static).update("checking the cloud...")
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Security groups", HELP, self.BINDINGS))

    def _ready(self) -> bool:
        if self.report is None:
            self.notify("the cloud has not been read yet (r: refresh)", severity="warning")
            return False
        if self.busy:
            self.notify("a change is in progress", severity="warning")
            return False
        return True

    def _confirm_and_apply(self, actions: list, title: str, *, danger: bool = False, note: str | None = None) -> None:
        def confirmed(ok: bool | None) -> None:
            if ok:
                self.apply(actions)
            else:
                self.notify("not applied")

        self.app.push_screen(ConfirmModal(title, actions, danger=danger, note=note), confirmed)

    def action_fix_one(self) -> None:
        if not self._ready():
            return
        s = self._selected()
        if s is None or s.ok:
            self.notify("this requirement is met: nothing to fix")
            return
        actions = plan_fixes(self.report, [s.requirement.id])
        if not actions:
            self.notify(f"no automatic fix for this: {s.detail[:200]}", severity="warning", timeout=8)
            return
        self._confirm_and_apply(actions, f"Fix: {s.requirement.title}? ({len(actions)} change(s))",
                                note="Each change is recorded with its revert (u).")

    def action_fix_all(self) -> None:
        if not self._ready():
            return
        actions = plan_fixes(self.report)
        if not actions:
            self.notify("nothing to fix automatically" if not self.report.ok else "every requirement is met")
            return
        self._confirm_and_apply(actions, f"Apply {len(actions)} change(s) to cloud {self.report.lab.cloud}?",
                                note="Rules first, then allowed-address-pairs. Each is recorded with its revert (u).")

    def action_port_security(self) -> None:
        if not self._ready():
            return
        row = self.query_one("#sec-nodes", DataTable).cursor_row
        nodes = self.report.lab.nodes
        if not (0 <= row < len(nodes)) or nodes[row].port is None:
            self.notify("highlight a node that has a port in this cloud", severity="warning")
            return
        node = nodes[row]
        actions = port_security_actions(self.report, [node.name])
        if not actions:
            self.notify(f"port security is already off on {node.name}'s port")
            return
        self._confirm_and_apply(actions, f"Disable port security on {node.name}'s port?", danger=True,
                                note=actions[0].data["cost"])

    @work(thread=True, exclusive=True, exit_on_error=False, group="security-change")
    def apply(self, actions: list) -> None:
        self.busy = True
        try:  # the modal showed these exact actions: the executor runs them (already-so ones record nothing)
            execution = Executor(self.lab.ctx, step="fix").run(actions, confirmed=True)
            self.post_message(FixDone(execution.summary()))
        except ExecutionStopped as exc:
            self.post_message(FixDone(f"{exc.execution.summary()}, then: {exc.render()}", error=True))
        except LabError as exc:
            self.post_message(FixDone(exc.render(), error=True))
        finally:
            self.busy = False

    @work(thread=True, exclusive=True, exit_on_error=False, group="security-change")
    def revert(self, changes: list) -> None:
        self.busy = True
        try:
            done, _ = Executor(self.lab.ctx, step="fix").revert(changes, confirmed=True)
            self.post_message(FixDone(f"reverted {len(done)} change(s)"))
        except LabError as exc:
            self.post_message(FixDone(exc.render(), error=True))
        finally:
            self.busy = False

    def on_fix_done(self, message: FixDone) -> None:
        self.notify(message.text, severity="error" if message.error else "information",
                    timeout=10 if message.error else 4)
        self.load()

    def action_revert(self) -> None:
        if self.lab is None:
            return
        changes = [c for c in self.lab.store.changes(self.lab.record.id, include_reverted=False)
                   if c.kind.startswith("openstack.")]
        if not changes:
            self.notify("no OpenStack change to revert in this lab")
            return
        last = changes[-1]

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.revert([last])
            else:
                self.notify("not reverted")

        lines = [last.description, f"$ {last.revert_command or '(revert change #%s)' % last.id}"]
        self.app.push_screen(ConfirmModal(f"Revert change #{last.id}?", lines, confirm_label="Revert"), confirmed)
