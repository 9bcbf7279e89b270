"""The Doctor screen: why pods cannot talk across nodes, the evidence, and the fix.

Left, the findings (most severe first); right, the selected finding's explanation, the affected
node pairs, the evidence and the fix options; below, the pod connectivity matrix as a grid and the
command log. 1-4 apply a fix option after a confirmation that lists every change in the order it
runs (security groups, then ports, then the Calico switch); the doctor then runs again. All I/O
runs in thread workers that post messages."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from labtui.doctor.run import apply_fix, fix_actions, last_diagnosis, run_doctor
from labtui.errors import LabError
from labtui.paths import session_dir, write_private
from labtui.report import session_report
from labtui.session import LabSession

from screens.base import LabScreen
from screens.crash import worker_crash
from screens.modals import ConfirmModal, HelpScreen
from screens.widgets.command_log import CommandLog


HELP = """The doctor answers one question: **can pods on different nodes reach each other, and if not, why?**

It reads the live Calico IP pool (its `ipipMode` / `vxlanMode`), the subnet each node is on (from the node
itself and from Neutron), and each node port's security groups, port security and allowed-address-pairs.
For every pair of nodes it works out which packet leaves the first node - **direct** (the pod's own
address as source), **IPIP** (IP protocol 4 between the node addresses) or **VXLAN** (UDP 4789) - and
whether OpenStack lets it leave one port and enter the other. Neutron's anti-spoofing drops packets
whose source is not the port's own address; the security groups must let protocol 4, UDP 4789 or
the pod addresses in; BGP needs TCP 179.

Then it proves it: one probe pod per node (pinned with `nodeName`), every pod pings every other,
and `tcpdump` on the control plane shows what is on the wire. The grid shows the result (row: from,
column: to).

**Fix options**, best first for this cluster:
1. IPIP Always + protocol 4 from the nodes' own group (the incident's fix);
2. VXLAN Always + UDP 4789;
3. the pod CIDR as an allowed-address-pair on every node port (no encapsulation);
4. port security off (discouraged: no cloud firewall on the nodes at all).

A fix is shown in full before anything changes, runs in a safe order (open the network first,
then switch Calico), is recorded with its revert (`labtui doctor NAME --revert N`), and the doctor
runs again so you see the finding gone."""

SEV_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
SEV_ICON = {"error": "✗", "warning": "!", "info": "·"}


class DoctorDone(Message):
    def __init__(self, diag: Any = None, error: str | None = None, after_fix: int | None = None) -> None:
        super().__init__()
        self.diag = diag
        self.error = error
        self.after_fix = after_fix


class FixPlanned(Message):
    def __init__(self, option: Any = None, actions: list | None = None, error: str | None = None) -> None:
        super().__init__()
        self.option = option
        self.actions = actions or []
        self.error = error


CHECK_SHORT = {"icmp": "ping", "tcp": "tcp", "mtu": "DF"}


def _cell_text(cells: list | None) -> Text:
    """One grid cell: "ok" when every check passed, else each check with ✓/✗ (the text, --json and
    JUnit carry each failing cell's cause)."""
    if not cells:
        return Text("-", style="dim")
    if all(c.ok for c in cells):
        return Text("ok", style="green")
    text = Text()
    for c in sorted(cells, key=lambda c: list(CHECK_SHORT).index(c.check) if c.check in CHECK_SHORT else 9):
        if text:
            text.append(" ")
        text.append(f"{CHECK_SHORT.get(c.check, c.check)}{'✓' if c.ok else '✗'}",
                    style="green" if c.ok else "bold red")
    return text


class DoctorScreen(LabScreen):
    BINDINGS = [
        Binding("r", "run", "Run again", id="doctor.run"),
        Binding("1", "fix(1)", "Fix 1", id="doctor.fix1"),
        Binding("2", "fix(2)", "Fix 2", id="doctor.fix2"),
        Binding("3", "fix(3)", "Fix 3", id="doctor.fix3"),
        Binding("4", "fix(4)", "Fix 4", id="doctor.fix4", show=False),
        Binding("l", "toggle_live", "Live proof on/off", id="doctor.live"),
        Binding("p", "report", "Write report", id="doctor.report"),
        Binding("escape", "back", "Back", id="doctor.back"),
        Binding("f1,question_mark", "help", "Help", id="doctor.help"),
    ]
    FOOTER_NARROW_HIDE = ("doctor.live", "doctor.report")
    DEFAULT_CSS = """
    DoctorScreen.-short CommandLog { height: 5; }
    DoctorScreen #doctor-summary { height: auto; padding: 0 1; }
    DoctorScreen #doctor-body { height: 1fr; min-height: 10; }
    DoctorScreen #findings { width: 38%; min-width: 30; border: round $panel; }
    DoctorScreen #detail-box { width: 1fr; border: round $panel; padding: 0 1; }
    DoctorScreen #matrix { height: auto; max-height: 12; }
    DoctorScreen .section { text-style: bold; padding: 0 1; }
    DoctorScreen CommandLog { height: 8; }
    """

    def __init__(self, session_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_name = session_name
        self.lab: LabSession | None = None
        self.diag = None
        self.live = True
        self.busy = False

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("running the doctor...", id="doctor-summary")
        with Horizontal(id="doctor-body"):
            yield OptionList(id="findings")
            with VerticalScroll(id="detail-box"):
                yield Static("", id="detail")
        yield Static("Pod-to-pod connectivity (row: from, column: to)", classes="section")
        yield DataTable(id="matrix", cursor_type="none", zebra_stripes=True)
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = f"{self.session_name} · Doctor"
        self.query_one("#findings", OptionList).border_title = "Findings"
        self.query_one("#detail-box").border_title = "Why, evidence, fixes"
        self.open_lab(self.session_name)
        self._show_stored()
        self.query_one("#findings", OptionList).focus()
        self.run_doctor()

    # ------------------------------------------------------------------ workers
    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def run_doctor(self) -> None:
        self.busy = True
        try:
            diag = run_doctor(self.lab.ctx, live=self.live)
            self.post_message(DoctorDone(diag))
        except LabError as exc:
            self.post_message(DoctorDone(error=exc.render()))
        except Exception as exc:
            self.post_message(DoctorDone(error="the doctor failed: " + worker_crash(exc, "doctor")))
        finally:
            self.busy = False

    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def plan_fix(self, number: int) -> None:
        try:
            opt = self.diag.option(number)
            if not opt.available:
                self.post_message(FixPlanned(error=f"fix {number} is not possible here: {opt.unavailable_reason}"))
                return
            self.post_message(FixPlanned(opt, fix_actions(self.lab.ctx, self.diag, opt)))
        except KeyError:
            self.post_message(FixPlanned(error=f"there is no fix option {number} for these findings"))
        except LabError as exc:
            self.post_message(FixPlanned(error=exc.render()))

    @work(thread=True, exclusive=True, exit_on_error=False, group="doctor")
    def apply_fix(self, option, actions) -> None:
        self.busy = True
        try:
            _acts, after = apply_fix(self.lab.ctx, self.diag, option, confirm=lambda a: True, actions=actions,
                                     live=self.live)
            self.post_message(DoctorDone(after, after_fix=option.number))
        except LabError as exc:
            self.post_message(DoctorDone(error=exc.render()))
        finally:
            self.busy = False

    # ------------------------------------------------------------------ rendering
    def _show_stored(self) -> None:
        data = last_diagnosis(self.lab.store, self.lab.record.id)
        if data:
            self.query_one("#doctor-summary", Static).update(
                Text(f"last run: {data.get('status')} — running the doctor again...", style="dim"))

    def on_doctor_done(self, message: DoctorDone) -> None:
        summary = self.query_one("#doctor-summary", Static)
        if message.error:
            summary.update(Text(message.error + "\n(r: run again)", style="bold red"))
            self.notify(message.error, severity="error", timeout=10)
            return
        self.diag = diag = message.diag
        if message.after_fix is not None:
            self.notify(f"fix {message.after_fix} applied; the doctor now says: {diag.status}",
                        severity="information" if diag.exit_code == 0 else "warning", timeout=8)
        summary.update(self._summary_text(diag))
        findings = self.query_one("#findings", OptionList)
        findings.clear_options()
        for f in diag.findings:
            label = Text()
            label.append(f"{SEV_ICON.get(f.severity, '·')} ", style=SEV_STYLE.get(f.severity, ""))
            label.append(f.title)
            findings.add_option(Option(label, id=f.id))
        for u in diag.unchecked:
            findings.add_option(Option(Text(f"{'–' if u.skipped else '?'} {u.verb} {u.what}", style="dim" if u.skipped else "yellow"), id=f"unchecked:{u.source}:{u.what}"))
        if not diag.findings and not diag.unchecked:
            findings.add_option(Option(Text("✓ no findings: pod traffic passes on every pair", style="green"), id="healthy"))
        findings.highlighted = 0 if findings.option_count else None
        self._show_detail()
        self._show_matrix()

    def _summary_text(self, diag) -> Text:
        f = diag.facts
        t = Text()
        style = {0: "bold green", 1: "bold red", 2: "bold yellow"}[diag.exit_code]
        t.append(f"{diag.status.upper()}", style=style)
        ok = sum(1 for v in diag.verdicts if v.ok)
        t.append(f"  pod paths passing: {ok}/{len(diag.verdicts)}")
        if f.timings.get("gather") is not None:
            t.append(f"  (facts in {f.timings['gather']:.2f}s" + (f", live proof {f.timings['live']:.1f}s" if "live" in f.timings else "") + ")",
                     style="dim")
        for p in [p for p in f.pools if not p.disabled]:
            t.append(f"\npool {p.name} {p.cidr}: {p.modes}")
        src = ", ".join(f"{k} {'ok' if v else 'unreachable'}" for k, v in f.sources.items())
        t.append(f"\nsources: {src or 'none'}; live proof {'on' if self.live else 'off'} (l)", style="dim")
        return t

    def _selected(self):
        if self.diag is None:
            return None
        ol = self.query_one("#findings", OptionList)
        if ol.highlighted is None:
            return None
        oid = ol.get_option_at_index(ol.highlighted).id or ""
        if oid.startswith("unchecked:"):
            _, source, what = oid.split(":", 2)
            return next((u for u in self.diag.unchecked if u.source == source and u.what == what), None)
        return next((f for f in self.diag.findings if f.id == oid), None)

    @on(OptionList.OptionHighlighted, "#findings")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        item = self._selected()
        if item is None:
            detail.update("")
            return
        t = Text()
        if hasattr(item, "reason"):  # an Unchecked
            t.append(f"Could not check {item.what}\n", style="bold yellow")
            t.append(item.reason + "\n")
            if item.hint:
                t.append("\nWhat to do: " + item.hint + "\n", style="italic")
            detail.update(t)
            return
        t.append(item.title + "\n", style=SEV_STYLE.get(item.severity, "bold"))
        if item.pairs:
            n = len(self.diag.facts.nodes)
            everyone = n > 1 and len(item.pairs) == n * (n - 1) and all("->" in p for p in item.pairs)
            t.append("affected: " + (f"all {len(item.pairs)} node pairs" if everyone else
                                     ", ".join(p.replace("->", "→") for p in item.pairs)) + "\n", style="dim")
        t.append("\n" + item.explanation + "\n")
        if item.evidence:
            t.append("\nEvidence\n", style="bold")
            for e in item.evidence:
                t.append(f"  [{e.source}] ", style="cyan")
                t.append(e.text + "\n")
        opts = [o for o in self.diag.options if o.number in item.fixes] or (self.diag.options if item.severity == "error" else [])
        if opts:
            t.append("\nFix options (press the number to apply, after a confirmation)\n", style="bold")
            for o in sorted(opts, key=lambda o: o.rank):
                head = f"  {o.number}. {o.title}"
                style = "bold green" if o.recommended else ("red" if o.discouraged else "bold")
                t.append(head + ("  [recommended]" if o.recommended else "") + "\n", style=style)
                if not o.available:
                    t.append(f"     not possible: {o.unavailable_reason}\n", style="dim red")
                t.append(f"     {o.why}\n     cost: {o.tradeoffs}\n", style="")
                for a in o.actions:
                    t.append(f"     $ {a.command}\n", style="dim")
                if o.expected:
                    t.append(f"     {o.expected}\n", style="italic")
        detail.update(t)

    def _show_matrix(self) -> None:
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        diag = self.diag
        cells = list(getattr(diag, "cells", None) or []) if diag is not None else []
        if diag is None or (diag.facts.matrix is None and not cells):
            table.add_column("no live proof")
            table.add_row("the probe pods did not run (see 'could not check'), or the live proof is off (l)")
            return
        names = [n.name for n in diag.facts.nodes]
        table.add_column("from \\ to", key="from")
        for n in names:
            table.add_column(n, key=n)
        if cells:  # the whole matrix: ICMP, TCP and the DF ping per cell; same-node on the diagonal; host rows
            by: dict[tuple[str, str, str], list] = {}
            for c in cells:
                by.setdefault((c.scope, c.src, c.dst), []).append(c)
            for scope, label in (("cross", ""), ("host", " (host)")):
                if scope == "host" and not any(k[0] == "host" for k in by):
                    continue
                for a in names:
                    row: list[Any] = [Text(a + label, style="bold")]
                    for b in names:
                        key = ("same" if a == b and scope == "cross" else scope, a, b)
                        row.append(_cell_text(by.get(key)))
                    table.add_row(*row, key=f"{scope}:{a}")
            return
        res = {(m.src, m.dst): m for m in diag.facts.matrix}
        for a in names:
            row = [Text(a, style="bold")]
            for b in names:
                m = res.get((a, b))
                if a == b:
                    row.append(Text("-", style="dim"))
                elif m is None:
                    row.append(Text("?", style="yellow"))
                else:
                    row.append(Text("ok", style="green") if m.ok else Text("FAIL", style="bold red"))
            table.add_row(*row, key=a)

    # ------------------------------------------------------------------ actions
    def action_run(self) -> None:
        if self.busy:
            self.notify("the doctor is already running", severity="warning")
            return
        self.query_one("#doctor-summary", Static).update("running the doctor...")
        self.run_doctor()

    def action_toggle_live(self) -> None:
        self.live = not self.live
        self.notify(f"live proof (probe pods, tcpdump) {'on' if self.live else 'off'} for the next run")

    def action_fix(self, number: int) -> None:
        if self.diag is None or self.busy:
            self.notify("wait for the doctor to finish", severity="warning")
            return
        if not self.diag.options:
            self.notify("nothing to fix: " + self.diag.status)
            return
        self.plan_fix(number)

    def on_fix_planned(self, message: FixPlanned) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=8)
            return
        opt, actions = message.option, message.actions
        danger = any(a.risk.value == "destructive" for a in actions)

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.query_one("#doctor-summary", Static).update(f"applying fix {opt.number}...")
                self.apply_fix(opt, actions)
            else:
                self.notify("not applied")

        note = ("Runs in this order: security groups, then ports, then Calico. Each change is recorded with its "
                "revert; the doctor then runs again.")
        if opt.discouraged:
            note = "DISCOURAGED: " + opt.tradeoffs + " " + note
        self.app.push_screen(ConfirmModal(f"Apply fix {opt.number}: {opt.title}?", actions, danger=danger, note=note),
                             confirmed)

    def action_report(self) -> None:
        path = session_dir(self.session_name, self.app.store.home) / "report.md"
        write_private(path, session_report(self.app.store, self.session_name))
        self.notify(f"report written: {path}")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Doctor", HELP, self.BINDINGS))
