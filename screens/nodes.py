"""The Nodes screen: every node of the lab over SSH (reachable? OS, kernel, runtime, latency),
`r` re-checks all in parallel, an ad-hoc command on the selected node with live output, `s` opens
a real shell (the system ssh with the same settings), and host-key decisions in modals that show
the SHA256 fingerprint as OpenSSH prints it. All SSH runs in thread workers."""

from __future__ import annotations

import gc
import subprocess
import threading
import time
from collections import deque
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from labtui.adapters.ssh import configure_session_ssh
from labtui.errors import LabError
from labtui.events import Event, INFO
from labtui.nodes.facts import gather, load_facts, store_facts
from labtui.session import LabSession

from screens.crash import CrashReporting
from screens.messages import EngineEvent
from screens.modals import HelpScreen, HostKeyModal, PromptModal
from screens.widgets.command_log import CommandLog
from screens.widgets.node_table import COLUMNS, NodeTable, row_text


HELP = """Every node of this lab, reached over SSH the way a careful admin would.

labtui merges the plan's node settings with your `~/.ssh/config` (HostName, User, Port,
IdentityFile, ProxyJump), uses your ssh-agent and key files (a passphrase is asked here and never
stored), and reaches nodes behind a bastion through ProxyJump. Connections are kept open and reused.

**Host keys.** labtui keeps its own `known_hosts` in its state directory and reads your
`~/.ssh/known_hosts` without ever writing it. A key seen for the first time is shown with its
SHA256 fingerprint, exactly as `ssh` and `ssh-keygen -lf` print it: compare it with the VM's console
log (cloud-init prints the host keys at first boot) before you accept it. A key that CHANGED is
refused: either the VM was rebuilt (then replace the stored key with **t**), or someone is in
between and you must not connect.

**r** re-checks every node in parallel and reads its facts (OS, kernel, CPUs, memory, swap, kernel
modules, ip_forward, container runtime, interface and subnet); they are saved in the lab.
**enter** in the command line runs a command on the selected node with live output below.
**s** opens a real shell on the selected node: labtui steps aside and runs the system `ssh` with
the same user, key, jump host and known_hosts."""

FLUSH_SECONDS = 0.1  # the UI takes node results in batches, never one message each
LOG_FLUSH_SECONDS = 0.3  # and the command log less often: each write re-lays the screen out
CHECK_WORKERS = 6
LINES_PER_FLUSH = 120  # command-log lines written per batch (a small, bounded piece of UI work)
BACKLOG_LINES = 600  # beyond this, older pending output is skipped in the view (it stays in the lab's log)


class NodeChecked(Message):
    def __init__(self, node: str, status: Any, facts: Any = None, error: str | None = None) -> None:
        super().__init__()
        self.node = node
        self.status = status
        self.facts = facts
        self.error = error


class CheckFinished(Message):
    def __init__(self, seconds: float, error: str | None = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.error = error


class CommandFinished(Message):
    def __init__(self, node: str, text: str, error: bool = False) -> None:
        super().__init__()
        self.node = node
        self.text = text
        self.error = error


class NodesScreen(CrashReporting, Screen):
    BINDINGS = [
        Binding("r", "recheck", "Re-check all", id="nodes.recheck"),
        Binding("c", "command", "Command", id="nodes.command"),
        Binding("s", "shell", "Shell", id="nodes.shell"),
        Binding("t", "trust", "Host key", id="nodes.trust"),
        Binding("escape", "back", "Back", id="nodes.back"),
        Binding("f1,question_mark", "help", "Help", id="nodes.help"),
    ]
    DEFAULT_CSS = """
    NodesScreen #nodes-summary { height: 1; padding: 0 1; }
    NodesScreen #nodes-header { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    NodesScreen #node-detail { height: 4; padding: 0 1; margin-bottom: 1; }
    NodesScreen #command { margin: 0 1; }
    NodesScreen CommandLog { height: 1fr; min-height: 8; }
    """

    def __init__(self, session_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_name = session_name
        self.lab: LabSession | None = None
        self.ssh = None
        self.names: list[str] = []
        self.statuses: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}
        self.checking: set[str] = set()
        self._asking = False
        self._addresses: dict[str, str] = {}
        self._events: deque = deque()  # filled by worker threads, drained by _flush on the UI
        self._results: dict[str, NodeChecked] = {}
        self._results_lock = threading.Lock()
        self.skipped_lines = 0
        self._last_log_flush = 0.0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="nodes-summary")
        yield Static(row_text(list(COLUMNS)), id="nodes-header")
        yield NodeTable(id="nodes-table")
        yield Static("", id="node-detail")
        yield Input(placeholder="a command for the selected node (enter runs it; output below)", id="command")
        yield CommandLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = f"{self.session_name} · Nodes"
        table = self.query_one("#nodes-table", NodeTable)
        self.lab = LabSession(self.app.store, self.session_name, emit=self._emit)
        plan = self.lab.plan()
        if plan is None or not plan.nodes:
            self.query_one("#nodes-summary", Static).update(Text(
                "This lab has no saved plan with nodes yet: finish the plan stage first.", style="bold red"))
            return
        self.names = [n.name for n in plan.nodes]
        self.ssh = configure_session_ssh(self.lab.ctx, headless=False, passphrase=self._ask_passphrase)
        self.facts = load_facts(self.lab.store, self.lab.record.id)
        # the plan's addresses until the worker has resolved them through the SSH config (resolving
        # imports paramiko: never on the event loop)
        self._addresses = {n.name: n.address for n in plan.nodes}
        self.set_interval(FLUSH_SECONDS, self._flush)
        for n in plan.nodes:
            table.add(n.name, self._cells(n.name))
        table.focus()
        self.action_recheck()

    def on_unmount(self) -> None:
        if self.lab is not None:
            self.lab.close()  # closes the SSH connections too

    # ------------------------------------------------------------------ rows
    def _address(self, name: str) -> str:
        return self._addresses.get(name, name)

    def _cells(self, name: str) -> list[Any]:
        st = self.statuses.get(name)
        f = self.facts.get(name)
        if name in self.checking:
            reach: Any = Text("checking…", style="dim")
        elif st is None:
            reach = Text("?", style="dim")
        elif st.reachable:
            reach = Text("yes", style="green")
        elif st.code == "hostkey-unknown":
            reach = Text("new host key", style="bold yellow")
        elif st.code == "hostkey-changed":
            reach = Text("KEY CHANGED", style="bold red")
        else:
            reach = Text("NO", style="bold red")
        latency = f"{st.latency_ms:.0f} ms" if st is not None and st.latency_ms is not None else "-"
        return [name, self._address(name) if self.ssh else "", reach, (f.os if f else "-"), (f.kernel if f else "-"),
                (f.runtime_label if f else "-"), latency]

    def _update_row(self, name: str) -> None:
        self.query_one("#nodes-table", NodeTable).set_cells(name, self._cells(name))
        if self._selected() == name:
            self._show_detail()

    def row_cells(self, name: str) -> list[str]:
        """The cells shown for a node, as plain text (for tests and the report)."""
        return [str(c) for c in self.query_one("#nodes-table", NodeTable).cells(name)]

    def _selected(self) -> str | None:
        return self.query_one("#nodes-table", NodeTable).selected

    def _show_detail(self) -> None:
        name = self._selected()
        widget = self.query_one("#node-detail", Static)
        if name is None:
            widget.update("", layout=False)
            return
        st, f = self.statuses.get(name), self.facts.get(name)
        text = Text()
        if st is not None and not st.reachable:
            text.append(st.error, style="red")
            if st.hint:
                text.append(f"\n  -> {st.hint}")
            if st.code in ("hostkey-unknown", "hostkey-changed"):
                text.append("\n  press t to decide on this host key", style="bold")
        elif st is not None:
            text.append(f"{st.user}@{self._address(name)}  sudo: {st.sudo or '?'}", style="green")
        if f is not None:
            text.append(("\n" if text.plain else "") + f.summary(), style="dim")
        widget.update(text, layout=False)  # fixed height: no re-layout

    @on(NodeTable.Highlighted)
    def _row(self, event: NodeTable.Highlighted) -> None:
        self._show_detail()

    def _summary(self, extra: str = "") -> None:
        total = len(self.names)
        ok = sum(1 for n in self.names if self.statuses.get(n) and self.statuses[n].reachable)
        text = Text(f"{total} nodes · {ok} reachable", style="bold" if ok == total else "bold yellow")
        if self.checking:
            text.append(f" · checking {len(self.checking)}…", style="dim")
        if extra:
            text.append(f" · {extra}", style="dim")
        self.query_one("#nodes-summary", Static).update(text, layout=False)  # fixed height: no re-layout

    # ------------------------------------------------------------------ engine plumbing
    def _emit(self, event) -> None:  # any thread
        self._events.append(event)

    def _node_done(self, message: "NodeChecked") -> None:  # any thread
        with self._results_lock:
            self._results[message.node] = message

    def on_engine_event(self, message: EngineEvent) -> None:
        self._events.append(message.event)

    def _flush(self, force: bool = False) -> None:
        """Every FLUSH_SECONDS: apply node results and write a bounded number of log lines. With
        30 nodes at work or 5 MB of output the event loop never runs a long burst of UI work."""
        with self._results_lock:
            results, self._results = self._results, {}
        for message in results.values():
            self._apply_node(message)
        if results:
            self._summary()
        now = time.monotonic()
        if not self._events or (now - self._last_log_flush < LOG_FLUSH_SECONDS and not force):
            return
        self._last_log_flush = now
        pending = sum(e.message.count("\n") + 1 for e in self._events)
        skipped = 0
        while pending > BACKLOG_LINES and len(self._events) > 1:
            event = self._events.popleft()
            n = event.message.count("\n") + 1
            pending -= n
            skipped += n
        batch = []
        if skipped:
            self.skipped_lines += skipped
            batch.append(_info_event(f"… {skipped} lines not shown here (the lab's log has them all: labtui.log)", None))
        budget = LINES_PER_FLUSH
        while self._events and budget > 0:
            event = self._events.popleft()
            lines = event.message.split("\n")
            if len(lines) > budget:  # write a part now, keep the rest for the next batch
                from dataclasses import replace as _replace

                self._events.appendleft(_replace(event, message="\n".join(lines[budget:])))
                event = _replace(event, message="\n".join(lines[:budget]))
                lines = lines[:budget]
            budget -= len(lines)
            batch.append(event)
        if batch:  # one write: one measure, one virtual-size change, one scroll for the whole batch
            self.query_one(CommandLog).write(Text("\n").join(CommandLog.render_event(e) for e in batch))

    def _ask_passphrase(self, node: str, path: str) -> str | None:
        if not self.app.is_running:
            return None
        return self.app.ask_from_thread(PromptModal(f"Passphrase for {path} (to reach {node}; never stored):",
                                                    password=True)) or None

    # ------------------------------------------------------------------ re-check
    def action_recheck(self) -> None:
        if self.ssh is None:
            return
        self.checking = set(self.names)
        for n in self.names:
            self._update_row(n)
        self._summary()
        self.check_all()

    @work(thread=True, exclusive=True, exit_on_error=False, group="nodes-check")
    def check_all(self) -> None:
        started = time.monotonic()
        ssh, lab = self.ssh, self.lab
        for name in self.names:
            try:
                ep = ssh.resolve(name)
                self._addresses[name] = ep.host + (f" via {ep.jump[-1].label}" if ep.jump else "")
            except LabError:
                pass
        # paramiko and friends are imported now: move every long-lived object out of the garbage
        # collector's sight, so a full collection (otherwise 100-150 ms, holding the GIL, often on
        # the event loop) only scans what the checks allocate
        gc.freeze()

        def one(name: str) -> None:
            status = ssh.check(name)
            facts = None
            error = None
            if status.reachable:
                res = gather(ssh, [name], step="facts")[name]
                if res.ok:
                    facts = res.value
                    store_facts(lab.store, lab.record.id, facts)
                else:
                    error = res.message
            self._node_done(NodeChecked(name, status, facts, error))

        try:
            ssh.fan_out(self.names, one, max_workers=CHECK_WORKERS)
            self.post_message(CheckFinished(time.monotonic() - started))
        except LabError as exc:
            self.post_message(CheckFinished(time.monotonic() - started, exc.render()))

    def _apply_node(self, message: NodeChecked) -> None:
        self.checking.discard(message.node)
        if message.status is None:
            return
        self.statuses[message.node] = message.status
        if message.facts is not None:
            self.facts[message.node] = message.facts
        if message.error:
            message.status.reachable = False
            message.status.error = message.error
        self._update_row(message.node)

    def on_check_finished(self, message: CheckFinished) -> None:
        self._flush(force=True)  # the node results and output that arrived just before
        self.checking.clear()
        self._summary(f"checked in {message.seconds:.1f} s")
        if message.error:
            self.notify(message.error, severity="error", timeout=10)
        self._ask_next_unknown()

    def _ask_next_unknown(self) -> None:
        """Ask about the first host key seen for the first time (one modal at a time)."""
        if self._asking:
            return
        seen: set[str] = set()
        for name in self.names:
            st = self.statuses.get(name)
            if st is not None and st.code == "hostkey-unknown" and st.host_key is not None:
                if st.host_key.host in seen:
                    continue
                seen.add(st.host_key.host)
                self._decide(st.host_key, changed=False, recheck=[n for n in self.names if self._same_key(n, st.host_key)])
                return

    def _same_key(self, name: str, info: Any) -> bool:
        st = self.statuses.get(name)
        return bool(st and st.host_key is not None and st.host_key.host == info.host)

    def _decide(self, info: Any, changed: bool, recheck: list[str]) -> None:
        self._asking = True

        def done(accepted: bool | None) -> None:
            self._asking = False
            if accepted:
                try:
                    self.ssh.trust_host_key(info, replace_changed=changed)
                except LabError as exc:
                    self.notify(exc.render(), severity="error", timeout=10)
                    return
                self.recheck_some(recheck)
            else:
                self.notify(f"not trusted: {info.host} stays unreachable for labtui", severity="warning")
                for n in recheck:  # do not ask again for this key in this round
                    st = self.statuses.get(n)
                    if st is not None:
                        st.code = "hostkey-refused"
                self._ask_next_unknown()

        self.app.push_screen(HostKeyModal(info, changed=changed), done)

    def recheck_some(self, names: list[str]) -> None:
        self.checking |= set(names)
        for n in names:
            self._update_row(n)
        self._summary()
        self._check_some(names)

    @work(thread=True, exclusive=False, exit_on_error=False, group="nodes-recheck")
    def _check_some(self, names: list[str]) -> None:
        started = time.monotonic()
        for name, res in self.ssh.fan_out(names, self.ssh.check, max_workers=CHECK_WORKERS).items():
            status = res.value
            facts = None
            if status is not None and status.reachable:
                got = gather(self.ssh, [name], step="facts")[name]
                if got.ok:
                    facts = got.value
                    store_facts(self.lab.store, self.lab.record.id, facts)
            self._node_done(NodeChecked(name, status, facts))
        self.post_message(CheckFinished(time.monotonic() - started))

    # ------------------------------------------------------------------ actions
    def action_trust(self) -> None:
        name = self._selected()
        st = self.statuses.get(name) if name else None
        if st is None or st.host_key is None:
            self.notify("the selected node has no host key question (r re-checks it)")
            return
        changed = st.code == "hostkey-changed"
        self._decide(st.host_key, changed=changed, recheck=[n for n in self.names if self._same_key(n, st.host_key)])

    def action_command(self) -> None:
        self.query_one("#command", Input).focus()

    @on(Input.Submitted, "#command")
    def _run_command(self, event: Input.Submitted) -> None:
        command = event.value.strip()
        name = self._selected()
        if not command or name is None or self.ssh is None:
            return
        event.input.value = ""
        self.run_command(name, command)

    @work(thread=True, exclusive=False, exit_on_error=False, group="nodes-command")
    def run_command(self, node: str, command: str) -> None:
        try:
            res = self.ssh.run(node, command, announce=True, step="adhoc", timeout=600)
            self.post_message(CommandFinished(node, f"{node}: exit {res.exit_code} in {res.duration:.2f}s",
                                              error=res.exit_code != 0))
        except LabError as exc:
            self.post_message(CommandFinished(node, exc.render(), error=True))

    def on_command_finished(self, message: CommandFinished) -> None:
        self.notify(message.text, severity="error" if message.error else "information",
                    timeout=8 if message.error else 3)

    def action_shell(self) -> None:
        name = self._selected()
        if name is None or self.ssh is None:
            return
        st = self.statuses.get(name)
        if st is not None and st.code in ("hostkey-unknown", "hostkey-changed", "hostkey-refused"):
            self.notify("decide on the host key first (t)", severity="warning")
            return
        try:
            argv = self.ssh.ssh_argv(name)
        except LabError as exc:
            self.notify(exc.render(), severity="error")
            return
        shown = " ".join(argv)
        self.query_one(CommandLog).add_event(_info_event(f"$ {shown}", name))
        try:
            with self.app.suspend():
                print(f"labtui: a shell on {name} (exit it to come back)\n$ {shown}\n", flush=True)
                subprocess.call(argv)
        except Exception as exc:  # SuspendNotSupported (e.g. a web terminal) and spawn errors
            self.notify(f"cannot open a terminal here ({type(exc).__name__}); run it yourself:\n{shown}",
                        severity="warning", timeout=15)
            return
        self.refresh()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Nodes", HELP, self.BINDINGS))


def _info_event(message: str, node: str):

    return Event(INFO, message, node=node)
