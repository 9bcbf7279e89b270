"""Edit the node list of a plan: a table (the highlighted row is shown in full below it), a form
that adds a node or edits the selected row (enter on a row loads it), and inventory import.

One order everywhere: the table's columns, the form's fields and a pasted line are Name, Address,
Role, User, Port, Key file, ProxyJump. A line pasted into the name field with tabs
("cp1<TAB>10.100.200.4<TAB>ubuntu<TAB>22") fills the fields in that order (a role word anywhere sets
the role); every field is checked at once and a wrong one is named ("SSH port: 'ubuntu' is not a port
number"). A row filled but not added is added by `commit_pending()` (the plan's Save & continue)."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from labtui.errors import LabError
from labtui.inventory import load_inventory
from labtui.model import FIELD_LABELS, NodeSpec


ROLES = [("control-plane", "control-plane"), ("worker", "worker")]
PASTE_ORDER = ["node-name", "node-address", "node-user", "node-port", "node-key", "node-jump"]
FIELD_INPUT = {"name": "node-name", "address": "node-address", "user": "node-user", "port": "node-port",
               "key_file": "node-key", "proxy_jump": "node-jump", "role": "node-role"}


def key_note(path: str) -> Text:
    path = path.strip()
    if not path:
        return Text("")
    full = os.path.expanduser(path)
    if os.path.isfile(full):
        return Text(f"✓ key file {full} exists", style="green")
    return Text(f"✗ key file {full} does not exist: check the path (or leave it empty to use "
                "your ssh-agent and ~/.ssh/config)", style="bold red")


def node_line(n: dict[str, Any]) -> str:
    """Every value of a node, in full (the table cuts long cells)."""
    parts = [n.get("name", ""), n.get("address", ""), n.get("role", "worker"),
             f"user {n.get('user', 'ubuntu')}", f"port {n.get('port', 22)}"]
    if n.get("key_file"):
        parts.append(f"key {n['key_file']}")
    if n.get("proxy_jump"):
        parts.append(f"via {n['proxy_jump']}")
    return "  ".join(str(p) for p in parts)


# the node fields this form edits (an empty input removes its field); a node's other fields are kept
FORM_FIELDS = ("name", "address", "role", "user", "port", "key_file", "proxy_jump")


class NodesEditor(Vertical):
    DEFAULT_CSS = """
    NodesEditor { height: auto; }
    NodesEditor DataTable { height: auto; max-height: 10; }
    NodesEditor #node-full { height: auto; color: $text-muted; margin-bottom: 1; }
    NodesEditor Grid { grid-size: 4; grid-columns: 9 1fr 10 1fr; grid-rows: 1; grid-gutter: 0 1;
        height: auto; }
    NodesEditor Grid Label { width: 100%; text-align: right; color: $text-muted; }
    NodesEditor Grid .wide { column-span: 3; }
    NodesEditor Input { width: 100%; }
    NodesEditor Select { width: 100%; }
    NodesEditor #node-key-note { height: auto; }
    NodesEditor #node-problem { height: auto; color: $error; text-style: bold; }
    NodesEditor .editor-row { height: auto; margin-top: 1; }
    NodesEditor .editor-row Button { min-width: 8; margin-right: 1; }
    NodesEditor #node-inventory { width: 1fr; }
    """

    class Changed(Message):
        def __init__(self, editor: "NodesEditor") -> None:
            super().__init__()
            self.editor = editor

    def __init__(self, nodes: list[dict[str, Any]] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nodes: list[dict[str, Any]] = [dict(n) for n in (nodes or [])]
        self.editing: int | None = None  # the row being edited, else None (the form adds)

    def compose(self) -> ComposeResult:
        yield DataTable(id="nodes-table", cursor_type="row")
        yield Static("", id="node-full")
        with Grid(id="node-form"):
            yield Label("Name")
            yield Input(placeholder="cp1", id="node-name", compact=True)
            yield Label("Address")
            yield Input(placeholder="10.100.200.4", id="node-address", compact=True)
            yield Label("Role")
            yield Select(ROLES, value="control-plane" if not self.nodes else "worker", allow_blank=False,
                         id="node-role", compact=True)
            yield Label("SSH user")
            yield Input(placeholder="ubuntu", id="node-user", compact=True)
            yield Label("SSH port")
            yield Input(placeholder="22", id="node-port", compact=True, max_length=5)
            yield Label("Key file")
            yield Input(placeholder="~/.ssh/id_ed25519 (empty: agent)", id="node-key", compact=True)
            yield Label("ProxyJump")
            yield Input(placeholder="user@bastion (optional)", id="node-jump", compact=True, classes="wide")
        yield Static("", id="node-problem")
        yield Static("", id="node-key-note")
        with Horizontal(id="node-buttons", classes="editor-row"):
            yield Button("Add node", id="node-add", variant="primary")
            yield Button("Remove", id="node-remove")
            yield Button("New", id="node-new")
        with Horizontal(classes="editor-row"):
            yield Input(placeholder="inventory file (YAML, kubespray hosts.yaml, Ansible INI)", id="node-inventory",
                        compact=True)
            yield Button("Import", id="node-import")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Name", "Address", "Role", "User", "Port", "Key", "ProxyJump")
        self._refill()

    def _refill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for i, n in enumerate(self.nodes):
            table.add_row(n.get("name", ""), n.get("address", ""), n.get("role", "worker"), n.get("user", "ubuntu"),
                          str(n.get("port", 22)), n.get("key_file") or "", n.get("proxy_jump") or "", key=str(i))
        self._show_full()

    def _show_full(self) -> None:
        table = self.query_one(DataTable)
        full = self.query_one("#node-full", Static)
        if not self.nodes or table.row_count == 0:
            full.update(Text("No nodes yet: fill the form and press Add (or import an inventory).", style="dim"))
            return
        row = min(table.cursor_row, len(self.nodes) - 1)
        hint = "  (enter: edit this row)" if self.editing is None else f"  (editing {self.nodes[self.editing].get('name')})"
        full.update(Text(node_line(self.nodes[row]) + hint))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_full()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.edit_row(event.cursor_row)

    def value(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self.nodes]

    def _changed(self) -> None:
        self._refill()
        self.post_message(self.Changed(self))

    # ------------------------------------------------------------------ form
    def _input(self, wid: str) -> Input:
        return self.query_one(f"#{wid}", Input)

    def edit_row(self, index: int) -> None:
        """Load a row into the form; Add becomes Save row."""
        if not 0 <= index < len(self.nodes):
            return
        n = self.nodes[index]
        self.editing = index
        table = self.query_one(DataTable)
        if table.cursor_row != index:
            table.move_cursor(row=index)
        self._input("node-name").value = n.get("name", "")
        self._input("node-address").value = n.get("address", "")
        self._input("node-user").value = n.get("user", "") if n.get("user", "ubuntu") != "ubuntu" else ""
        self._input("node-port").value = str(n.get("port", "")) if n.get("port", 22) != 22 else ""
        self._input("node-key").value = n.get("key_file") or ""
        self._input("node-jump").value = n.get("proxy_jump") or ""
        self.query_one("#node-role", Select).value = n.get("role", "worker")
        self.query_one("#node-add", Button).label = "Save row"
        self._show_full()
        self._input("node-name").focus()

    def clear_form(self) -> None:
        self.editing = None
        for wid in PASTE_ORDER:
            self._input(wid).value = ""
        self._show_problem("")
        self.query_one("#node-role", Select).value = "control-plane" if not self.nodes else "worker"
        self.query_one("#node-add", Button).label = "Add node"
        self._show_full()

    def focus_problem(self, field: str) -> None:
        """Focus the input of a problem like `nodes[w1].address` (loading that row), else the table."""
        import re

        m = re.match(r"^nodes\[([^\]]*)\]\.?(.*)$", field)
        if m:
            name, attr = m.group(1), m.group(2)
            index = next((i for i, n in enumerate(self.nodes) if n.get("name") == name), None)
            if index is None and name.isdigit() and int(name) < len(self.nodes):
                index = int(name)
            if index is not None:
                self.edit_row(index)
                wid = FIELD_INPUT.get(attr, "node-name")
                self.query_one(f"#{wid}").focus()
                return
        if self.nodes:
            self.query_one(DataTable).focus()
        else:
            self._input("node-name").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        wid = event.input.id or ""
        if wid in PASTE_ORDER and "\t" in event.value:
            event.stop()
            self._split_paste(wid, event.value)
            return
        if wid == "node-key":
            self.query_one("#node-key-note", Static).update(key_note(event.value))
        if wid in PASTE_ORDER and self._problem_shown:  # a named error clears (or changes) as it is typed
            self._check_form()
        if wid.startswith("node-"):
            event.stop()  # the form's keystrokes are not the plan's drafts: Add / Save row commits

    def _split_paste(self, start: str, text: str) -> None:
        """A pasted line with tabs spreads over the fields from the one it was pasted into."""
        parts = [p.strip() for p in text.split("\t")]
        roles = {r for r, _ in ROLES}
        role = next((p for p in parts if p in roles), None)
        parts = [p for p in parts if p not in roles]
        order = PASTE_ORDER[PASTE_ORDER.index(start):]
        for wid, value in zip(order, parts):
            self._input(wid).value = value
        if role:
            self.query_one("#node-role", Select).value = role
        self._input(order[min(len(parts), len(order)) - 1]).focus()
        if len(parts) > len(order):
            self._show_problem(f"the pasted line has {len(parts)} values but the form takes {len(order)} from "
                               f"{start.removeprefix('node-')}: the extra ones were left out (order: name, address, "
                               "role, user, port, key file, ProxyJump)")
            return
        problems = self._check_form()
        if problems:
            self._input(FIELD_INPUT.get(problems[0][0], "node-name")).focus()

    # ------------------------------------------------------------------ checking the form
    _problem_shown = False

    def _show_problem(self, text: str) -> None:
        self._problem_shown = bool(text)
        self.query_one("#node-problem", Static).update(Text(text))

    def form_problems(self, *, complete: bool = False) -> list[tuple[str, str]]:
        """(field, message) for each wrong field of the form, named as on screen. `complete`: a missing
        name or address is a problem too (when the row is added)."""

        values = {f: self._input(FIELD_INPUT[f]).value.strip() for f in ("name", "address", "user", "port",
                                                                          "key_file", "proxy_jump")}
        problems: list[tuple[str, str]] = []
        if complete:
            for f in ("name", "address"):
                if not values[f]:
                    problems.append((f, f"Node {f}: needed (a node needs at least a name and an address)"))
        port = values["port"]
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            problems.append(("port", f"SSH port: {port!r} is not a port number (1-65535; empty: 22)"))
        probe = {"name": values["name"] or "x", "address": values["address"] or "127.0.0.1"}
        probe.update({f: values[f] for f in ("user", "key_file", "proxy_jump") if values[f]})
        if port.isdigit():
            probe["port"] = int(port)
        try:
            NodeSpec.model_validate(probe)
        except Exception as exc:  # pydantic's ValidationError: each field named
            for err in getattr(exc, "errors", lambda: [])():
                loc = str(err.get("loc", ("",))[0])
                if loc in ("name", "address") and not values[loc]:
                    continue
                label = {"name": "Node name", "address": "Address"}.get(loc, FIELD_LABELS.get(loc, loc))
                msg = str(err.get("msg", "")).removeprefix("Value error, ")
                problems.append((loc, f"{label}: {msg}"))
        order = ["name", "address", "user", "port", "key_file", "proxy_jump"]  # the form's order
        return sorted(problems, key=lambda p: order.index(p[0]) if p[0] in order else len(order))

    def _check_form(self, *, complete: bool = False) -> list[tuple[str, str]]:
        problems = self.form_problems(complete=complete)
        self._show_problem("\n".join(f"✗ {m}" for _, m in problems))
        return problems

    def pending(self) -> bool:
        """The form holds a row that is not in the table yet (or an edit not saved)."""
        form = {f: self._input(FIELD_INPUT[f]).value.strip() for f in ("name", "address", "user", "port",
                                                                        "key_file", "proxy_jump")}
        if not any(form.values()):
            return False
        if self.editing is not None and self.editing < len(self.nodes):
            n = self.nodes[self.editing]
            row = {"name": n.get("name", ""), "address": n.get("address", ""),
                   "user": n.get("user", "") if n.get("user", "ubuntu") != "ubuntu" else "",
                   "port": str(n.get("port", "")) if n.get("port", 22) != 22 else "",
                   "key_file": n.get("key_file") or "", "proxy_jump": n.get("proxy_jump") or ""}
            return form != row or self.query_one("#node-role", Select).value != n.get("role", "worker")
        return True

    def commit_pending(self) -> bool:
        """Add (or save) the row still in the form; False when it has a wrong field (named, focused)."""
        if not self.pending():
            return True
        return self.add_from_inputs()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "node-add":
            self.add_from_inputs()
        elif event.button.id == "node-remove":
            self.remove_selected()
        elif event.button.id == "node-new":
            self.clear_form()
            self._input("node-name").focus()
        elif event.button.id == "node-import":
            self.import_inventory(self.query_one("#node-inventory", Input).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        wid = event.input.id or ""
        if wid == "node-inventory":
            event.stop()
            self.import_inventory(event.value)
        elif wid == "node-name":
            event.stop()  # enter in the name goes on to the address, it does not add a half node
            self._input("node-address").focus()
        elif wid.startswith("node-"):
            event.stop()
            self.add_from_inputs()

    def add_from_inputs(self) -> bool:
        problems = self._check_form(complete=True)
        if problems:
            self.app.notify(problems[0][1], title="Node not added", severity="warning")
            self._input(FIELD_INPUT.get(problems[0][0], "node-name")).focus()
            return False
        name = self._input("node-name").value.strip()
        address = self._input("node-address").value.strip()
        node: dict[str, Any] = {"name": name, "address": address, "role": self.query_one("#node-role", Select).value}
        user = self._input("node-user").value.strip()
        port = self._input("node-port").value.strip()
        key = self._input("node-key").value.strip()
        jump = self._input("node-jump").value.strip()
        if user:
            node["user"] = user
        if port:
            node["port"] = int(port)
        if key:
            node["key_file"] = key
        if jump:
            node["proxy_jump"] = jump
        if self.editing is not None and self.editing < len(self.nodes):
            old = self.nodes[self.editing]
            if old.get("name") == name:  # what the form does not show (ssh_host, the floating IP provisioning wrote) is kept
                node = {k: v for k, v in old.items() if k not in FORM_FIELDS} | node
            self.nodes[self.editing] = node
            others = [n for i, n in enumerate(self.nodes) if i != self.editing and n.get("name") == name]
            if others:
                self.nodes = [n for i, n in enumerate(self.nodes) if i == self.editing or n.get("name") != name]
            self.app.notify(f"saved {name}")
        else:
            self.nodes = [n for n in self.nodes if n.get("name") != name] + [node]
        self.clear_form()
        self._input("node-name").focus()
        self._changed()
        return True

    def remove_selected(self) -> None:
        table = self.query_one(DataTable)
        if not self.nodes or table.row_count == 0:
            return
        del self.nodes[table.cursor_row]
        self.clear_form()
        self._changed()

    def import_inventory(self, path: str) -> None:
        if not path.strip():
            self.app.notify("type the path of an inventory file first", severity="warning")
            return
        try:
            nodes = load_inventory(path.strip())
        except LabError as exc:
            self.app.notify(exc.render(), title="Inventory not imported", severity="error", timeout=10)
            return
        self.nodes = nodes
        self.app.notify(f"imported {len(nodes)} nodes from {path.strip()}")
        self.clear_form()
        self._changed()
