"""Adopt a cluster labtui did not build (`D` on home): the short path. Give its kubeconfig (or let
labtui fetch admin.conf from the control plane over SSH), its nodes (typed or from an inventory) and
its cloud; everything else (pod CIDR, service CIDR, encapsulation, versions, subnets) is read from
the live cluster by the doctor. Then the lab opens on its Doctor stage."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from labtui.errors import LabError
from labtui.model import NAME_RE, Plan, Problem, covering_subnet, node_problems
from labtui.stages.plan import LabStep, key_file_problems

from screens.crash import CrashReporting
from screens.modals import HelpScreen
from screens.widgets.nodes_editor import NodesEditor
from screens.wizard import WizardScreen


HELP = """For a cluster you already have (kubeadm or not). labtui needs three things, and reads the rest
from the live cluster:

- **Kubeconfig**: a file you have (e.g. a copy of /etc/kubernetes/admin.conf). Leave it empty and
  labtui fetches admin.conf from the control-plane node over SSH (kept as a 0600 file in the lab's
  directory, never in the database or the log).
- **Nodes**: how to reach each node over SSH (for its facts and the live proof); import an inventory
  (kubespray's hosts.yaml, an Ansible INI or labtui YAML) or type them.
- **Cloud**: the OpenStack cloud the VMs run on, for the security groups and ports (or none).

Then the Doctor stage opens: it reads the pool mode, the subnets, the security groups and the ports,
and explains what it finds before it proposes anything."""

NO_CLOUD = ""


def adopt_problems(name: str, kubeconfig: str, nodes: list[dict[str, Any]], cloud: str, taken: bool) -> list[Problem]:

    problems: list[Problem] = []
    if not NAME_RE.match(name):
        problems.append(Problem("name", f"{name!r} is not a valid lab name",
                                "use lower-case letters, digits and '-', e.g. my-cluster"))
    elif taken:
        problems.append(Problem("name", f"a lab named {name} already exists", "choose another name, or resume that lab"))
    if kubeconfig and not os.path.isfile(os.path.expanduser(kubeconfig)):
        problems.append(Problem("kubeconfig", f"{kubeconfig} does not exist",
                                "type the path of the cluster's kubeconfig, or leave it empty to fetch admin.conf "
                                "from the control plane over SSH"))
    if not kubeconfig and not nodes:
        problems.append(Problem("kubeconfig", "no kubeconfig and no nodes: labtui cannot reach the cluster",
                                "give the kubeconfig, or the nodes (labtui then fetches admin.conf over SSH)"))
    if nodes:
        problems += [p for p in node_problems(nodes, None) if p.severity == "error"]
        problems += key_file_problems(nodes)
    return problems


class AdoptScreen(CrashReporting, Screen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Create & run doctor", id="adopt.save", priority=True),
        Binding("escape", "back", "Back", id="adopt.back"),
        Binding("f1,question_mark", "help", "Help", id="adopt.help"),
    ]
    DEFAULT_CSS = """
    AdoptScreen #adopt-pane { padding: 0 1; }
    AdoptScreen .field-label { margin-top: 1; }
    AdoptScreen Input { width: 1fr; max-width: 90; }
    AdoptScreen Select { width: 1fr; max-width: 90; }
    AdoptScreen .field-note { height: auto; color: $text-muted; margin-left: 2; }
    AdoptScreen #adopt-problems { margin-top: 1; height: auto; }
    AdoptScreen #adopt-buttons { height: auto; margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.created: str | None = None

    def compose(self) -> ComposeResult:
        choices, default, problem = LabStep().cloud_choices()
        yield Header()
        with VerticalScroll(id="adopt-pane"):
            yield Static(Text("Adopt a cluster labtui did not build: the kubeconfig, the nodes and the cloud. "
                              "Everything else is read from the live cluster.", style="italic"))
            yield Label("Lab name", classes="field-label")
            yield Input(placeholder="my-cluster", id="a-name")
            yield Label(Text.assemble("Kubeconfig file  ", ("empty: fetch admin.conf from the control plane over SSH",
                                                             "dim")), classes="field-label")
            yield Input(placeholder="~/.kube/config", id="a-kubeconfig")
            yield Static("", id="a-kubeconfig-note", classes="field-note")
            yield Label(Text.assemble("Nodes  ", ("for SSH facts and the live proof; the first control-plane "
                                                  "node serves admin.conf", "dim")), classes="field-label")
            yield NodesEditor([], id="a-nodes")
            yield Label("Cloud", classes="field-label")
            yield Select([(label, val) for val, label in choices], value=default if default is not None else NO_CLOUD,
                         allow_blank=False, id="a-cloud")
            if problem:
                yield Static(Text(f"clouds.yaml: {problem}", style="yellow"), classes="field-note")
            yield Static("", id="adopt-problems")
            with Horizontal(id="adopt-buttons"):
                yield Button("Create & run the doctor", id="adopt-save", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "labtui"
        self.sub_title = "adopt a cluster"
        self.query_one("#a-name", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "a-kubeconfig":

            self.query_one("#a-kubeconfig-note", Static).update(WizardScreen._path_note(event.value))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "adopt-save":
            self.action_save()

    def values(self) -> dict[str, Any]:
        cloud = self.query_one("#a-cloud", Select).value
        return {
            "name": self.query_one("#a-name", Input).value.strip(),
            "kubeconfig": self.query_one("#a-kubeconfig", Input).value.strip(),
            "nodes": self.query_one(NodesEditor).value(),
            "cloud": "" if cloud is Select.BLANK else str(cloud or ""),
        }

    def action_save(self) -> None:
        if not self.query_one(NodesEditor).commit_pending():  # a row filled but not added is not dropped
            self.notify("the node in the form was not added: fix the field named below, or clear the form (New)",
                        severity="error")
            return
        v = self.values()
        store = self.app.store
        problems = adopt_problems(v["name"], v["kubeconfig"], v["nodes"], v["cloud"], store.has_session(v["name"]))
        if problems:
            self._show_problems(problems)
            first = problems[0]
            target = {"name": "#a-name", "kubeconfig": "#a-kubeconfig"}.get(first.field)
            if target:
                self.query_one(target).focus()
            else:
                self.query_one(NodesEditor).focus_problem(first.field)
            self.notify("fix the inputs marked below", severity="error")
            return
        try:
            self.create(v)
        except LabError as exc:
            self.query_one("#adopt-problems", Static).update(Text(exc.render(), style="bold red"))
            self.notify(exc.render(), severity="error")
            return
        self.created = v["name"]
        self.notify(f"created the lab {v['name']} for an existing cluster: the doctor reads it now")
        self.app.pop_screen()
        self.app.open_wizard(v["name"])

    def create(self, v: dict[str, Any]) -> None:
        """The lab of an adopted cluster: its nodes (the plan's defaults are replaced by the live values
        when the doctor reads the cluster), its cloud and its kubeconfig."""

        nodes = [dict(n) for n in v["nodes"]]
        if nodes and not any(n.get("role") == "control-plane" for n in nodes):
            nodes[0]["role"] = "control-plane"
        plan: dict[str, Any] = {}
        cloud = v["cloud"] or None
        if nodes:
            subnet = covering_subnet([n["address"] for n in nodes]) or "10.0.0.0/8"
            plan = Plan.parse({"name": v["name"], "cloud": cloud, "nodes": nodes,
                               "node_subnet": subnet}).model_dump(mode="json")
        inputs: dict[str, Any] = {"adopted": True}
        if cloud:
            inputs["cloud"] = cloud
        if v["kubeconfig"]:
            inputs["kubeconfig"] = str(os.path.abspath(os.path.expanduser(v["kubeconfig"])))
        self.app.store.create_session(v["name"], cloud=cloud, wizard="doctor", plan=plan, inputs=inputs)

    def _show_problems(self, problems: list[Problem]) -> None:
        text = Text()
        for p in problems:
            text.append(f"✗ {p.label}: {p.message}\n", style="bold red")
            if p.hint:
                text.append(f"    -> {p.hint}\n", style="dim")
        self.query_one("#adopt-problems", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen("Adopt a cluster", HELP, self.BINDINGS))
