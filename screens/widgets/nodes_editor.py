"""Edit the node list of a plan: a table, a row of inputs to add one, and inventory import."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Select

from labtui.errors import LabError
from labtui.inventory import load_inventory

ROLES = [("control-plane", "control-plane"), ("worker", "worker")]


class NodesEditor(Vertical):
    DEFAULT_CSS = """
    NodesEditor { height: auto; }
    NodesEditor DataTable { height: auto; max-height: 12; margin-bottom: 1; }
    NodesEditor Horizontal { height: auto; }
    NodesEditor Input { width: 1fr; }
    NodesEditor #node-role { width: 20; }
    NodesEditor Button { min-width: 10; }
    """

    class Changed(Message):
        def __init__(self, editor: "NodesEditor") -> None:
            super().__init__()
            self.editor = editor

    def __init__(self, nodes: list[dict[str, Any]] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nodes: list[dict[str, Any]] = [dict(n) for n in (nodes or [])]

    def compose(self) -> ComposeResult:
        yield DataTable(id="nodes-table", cursor_type="row")
        with Horizontal():
            yield Input(placeholder="name (cp1)", id="node-name")
            yield Input(placeholder="address (10.100.200.10)", id="node-address")
            yield Input(placeholder="ssh user (ubuntu)", id="node-user")
            yield Input(placeholder="key file (~/.ssh/id_ed25519)", id="node-key")
            yield Select(ROLES, value="control-plane" if not self.nodes else "worker", allow_blank=False, id="node-role")
            yield Button("Add", id="node-add", variant="primary")
        with Horizontal():
            yield Input(placeholder="inventory file (YAML, kubespray hosts.yaml or Ansible INI)", id="node-inventory")
            yield Button("Import", id="node-import")
            yield Button("Remove selected", id="node-remove")

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

    def value(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self.nodes]

    def _changed(self) -> None:
        self._refill()
        self.post_message(self.Changed(self))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "node-add":
            self.add_from_inputs()
        elif event.button.id == "node-remove":
            self.remove_selected()
        elif event.button.id == "node-import":
            self.import_inventory(self.query_one("#node-inventory", Input).value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "node-inventory":
            event.stop()
            self.import_inventory(event.value)
        elif event.input.id and event.input.id.startswith("node-"):
            event.stop()
            self.add_from_inputs()

    def add_from_inputs(self) -> None:
        name = self.query_one("#node-name", Input).value.strip()
        address = self.query_one("#node-address", Input).value.strip()
        if not name or not address:
            self.app.notify("a node needs at least a name and an address", severity="warning")
            return
        node: dict[str, Any] = {"name": name, "address": address, "role": self.query_one("#node-role", Select).value}
        user = self.query_one("#node-user", Input).value.strip()
        key = self.query_one("#node-key", Input).value.strip()
        if user:
            node["user"] = user
        if key:
            node["key_file"] = key
        self.nodes = [n for n in self.nodes if n.get("name") != name] + [node]
        for wid in ("#node-name", "#node-address"):
            self.query_one(wid, Input).value = ""
        self.query_one("#node-role", Select).value = "worker"
        self.query_one("#node-name", Input).focus()
        self._changed()

    def remove_selected(self) -> None:
        table = self.query_one(DataTable)
        if not self.nodes or table.row_count == 0:
            return
        del self.nodes[table.cursor_row]
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
        self._changed()
