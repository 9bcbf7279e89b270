"""The plan wizard: lab and cloud, nodes, networks, versions and encapsulation, review and save."""

from __future__ import annotations

from typing import Any

from labtui.cloudconfig import load_clouds
from labtui.errors import LabError, ValidationFailed
from labtui.inventory import load_inventory
from labtui.model import (
    CALICO_VERSIONS,
    DEFAULT_CALICO,
    DEFAULT_CALICO_MANIFESTS,
    DEFAULT_DOCKER_REPO,
    DEFAULT_KUBERNETES,
    DEFAULT_KUBERNETES_REPO,
    ENCAPSULATION_CHOICES,
    KUBERNETES_MINORS,
    PROVISION_LABELS,
    SOURCES_LABELS,
    Encapsulation,
    Plan,
    Problem,
    SourcesSpec,
    collect_problems,
    default_networks,
    dns_list,
    guess_subnet,
    network_problems,
    node_problems,
    provision_problems,
    sources_problems,
)
from labtui.steps import Action, CheckResult, InputField, Risk, Step, StepContext, Wizard

NO_CLOUD = ""


def key_file_problems(nodes: list[dict[str, Any]]) -> list[Problem]:
    """A key file that does not exist is found now, not at the first SSH login."""
    import os

    out = []
    for n in nodes:
        key = (n.get("key_file") or "").strip()
        if key and not os.path.isfile(os.path.expanduser(key)):
            out.append(Problem(f"nodes[{n.get('name') or '?'}].key_file", f"{key} does not exist",
                               "type the path of the private key you log in with (e.g. ~/.ssh/id_ed25519), "
                               "or leave it empty to use your ssh-agent and ~/.ssh/config"))
    return out


def worker_problems(nodes: list[dict[str, Any]]) -> list[Problem]:
    """Pods talking across nodes is what a lab is for: a plan without a worker is refused here."""
    out = []
    for p in node_problems(nodes, None):
        if p.field == "nodes" and p.message == "no worker node":
            out.append(Problem(p.field, p.message, p.hint, "error"))
    return out


def one_subnet_crosssubnet(data: dict[str, Any]) -> Problem | None:
    """The trap this product exists for: CrossSubnet with every node on one subnet sends pod traffic
    unencapsulated, and OpenStack's anti-spoofing drops it."""
    enc = str(data.get("encapsulation") or "")
    if enc not in (Encapsulation.IPIP_CROSS_SUBNET.value, Encapsulation.VXLAN_CROSS_SUBNET.value):
        return None
    import ipaddress

    subnet = data.get("node_subnet")
    try:
        net = ipaddress.ip_network(subnet, strict=False) if subnet else None
        addrs = [ipaddress.ip_address(n.get("address", "")) for n in data.get("nodes") or []]
    except ValueError:
        return None
    if net is None or not addrs or not all(a in net for a in addrs):
        return None
    better = "IPIP Always" if enc == Encapsulation.IPIP_CROSS_SUBNET.value else "VXLAN Always"
    return Problem(
        "encapsulation",
        f"{enc} with every node on one subnet ({net}) sends pod traffic between the nodes unencapsulated, with "
        "pod source addresses; on OpenStack, anti-spoofing drops those packets and pods on different nodes "
        "cannot talk",
        f"switch to {better} (the button below does it), or add the pod CIDR as an allowed-address-pair on every port",
        "warning")


class InputStep(Step):
    """A step that is done once its inputs are saved and valid."""

    keys: tuple[str, ...] = ()

    def check(self, ctx: StepContext) -> CheckResult:
        saved = ctx.session.plan or {}
        if saved and all(k not in ctx.inputs for k in self.keys) and all(k in saved for k in self.keys):
            # a plan saved without the wizard (adopted with `labtui doctor --adopt`, or a plan file)
            return CheckResult(True, "from the saved plan")
        values = {k: ctx.inputs.get(k) for k in self.keys}
        if any(k not in ctx.inputs for k in self.keys):
            return CheckResult(False, "waiting for input")
        errors = [p for p in self.validate(ctx, values) if p.severity == "error"]
        if errors:
            return CheckResult(False, "; ".join(f"{p.label}: {p.message}" for p in errors))
        return CheckResult(True, "saved")

    def defaults(self, ctx: StepContext) -> dict[str, Any]:
        return {f.name: ctx.inputs.get(f.name, f.default) for f in self.fields}


class LabStep(InputStep):
    id = "lab"
    title = "Lab and cloud"
    why = (
        "A lab is one cluster you are building (or repairing). Its name labels everything labtui\n"
        "records. Pick the OpenStack cloud from your clouds.yaml (labtui reads the file, it does not\n"
        "log in yet, and never stores your password), or say you will adopt machines you already have."
    )
    keys = ("cloud",)
    expect = "The cloud's name and its auth URL from clouds.yaml; nothing is sent to the cloud yet."
    by_hand = "openstack --os-cloud CLOUD token issue   # proves clouds.yaml works (labtui does this in the Cloud stage)"

    @property
    def fields(self) -> list[InputField]:  # type: ignore[override]
        return [
            InputField("name", "Lab name", help="lower-case letters, digits and '-' (e.g. study-lab)"),
            InputField("cloud", "Cloud", kind="choice", required=False,
                       help="from clouds.yaml; OS_CLOUD is the default"),
        ]

    def cloud_choices(self) -> tuple[list[tuple[str, str]], str | None, str | None]:
        """(choices, default, problem) - a broken clouds.yaml is reported, not fatal: the user can adopt."""
        try:
            cfg = load_clouds()
        except LabError as exc:
            return [(NO_CLOUD, "no cloud: adopt machines I already have")], NO_CLOUD, exc.render()
        choices = [(n, f"{n}  {cfg.describe(n)}") for n in cfg.names]
        choices.append((NO_CLOUD, "no cloud: adopt machines I already have"))
        return choices, cfg.default if cfg.default is not None else (cfg.names[0] if cfg.names else NO_CLOUD), None

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        cloud = values.get("cloud") or NO_CLOUD
        if cloud == NO_CLOUD:
            return []
        try:
            load_clouds().require(cloud)
        except LabError as exc:
            return [Problem("cloud", exc.message, exc.hint)]
        return []


CREATE = "create"
ADOPT = "adopt"
PROVISION_INPUTS = {k: f"prov_{k}" for k in PROVISION_LABELS}  # the plan's provision field -> the wizard's input
DEFAULT_PUBLIC_KEY = "~/.ssh/id_ed25519.pub"


def lab_cloud(ctx: StepContext) -> str:
    """The cloud the plan wizard has (its input, else the saved plan's)."""
    if "cloud" in ctx.inputs:
        return str(ctx.inputs.get("cloud") or "")
    return str((ctx.session.plan or {}).get("cloud") or "")


def provision_block(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's `provision` block from the Machines step's inputs (None: adopt existing machines).
    An empty input is left out: the Provision stage picks (best image, smallest flavor kubeadm
    accepts, a new network, your own address for SSH)."""
    if not inputs.get("cloud") or inputs.get("provision_mode") != CREATE:
        return None
    block: dict[str, Any] = {}
    for key, name in PROVISION_INPUTS.items():
        value = inputs.get(name)
        if key == "floating_ip":
            block[key] = value is not False
            continue
        if key == "dns_nameservers":
            servers = dns_list(value)
            if servers:
                block[key] = servers
            continue
        text = str(value).strip() if value is not None else ""
        if text:
            block[key] = text
    block.setdefault("public_key_file", DEFAULT_PUBLIC_KEY)
    return block


def provision_inputs(block: dict[str, Any] | None, cloud: str | None) -> dict[str, Any]:
    """The Machines step's inputs for a plan's provision block (a plan file applied to the lab)."""
    if not cloud:
        return {}
    out: dict[str, Any] = {"provision_mode": CREATE if isinstance(block, dict) else ADOPT}
    for key, name in PROVISION_INPUTS.items():
        value = (block or {}).get(key)
        if key == "dns_nameservers":
            out[name] = ", ".join(dns_list(value))
            continue
        out[name] = (value is not False) if key == "floating_ip" else ("" if value is None else str(value))
    if isinstance(block, dict) and not block.get("public_key_file"):
        out[PROVISION_INPUTS["public_key_file"]] = DEFAULT_PUBLIC_KEY
    return out


class MachinesStep(InputStep):
    id = "machines"
    title = "Create or adopt"
    why = (
        "Your nodes are virtual machines. labtui can create them in your OpenStack project (a network,\n"
        "a security group with the rules Kubernetes and Calico need, your public key, one server per\n"
        "node and a floating IP to reach them), or adopt machines you have already. Leave a field\n"
        "empty and labtui picks it from what the cloud offers when it provisions."
    )
    expect = ("'labtui creates them' and the fields you want to fix; empty ones are chosen later from what the "
              "cloud offers (nothing is sent to the cloud yet).")
    by_hand = ("openstack image list; openstack flavor list; openstack network list --external   "
               "# what the fields can name")
    glossary = ("floating IP", "jump host", "security group")
    keys = ("provision_mode",)
    fields = [
        InputField("provision_mode", "Machines", kind="choice", default=CREATE,
                   choices=[(CREATE, "labtui creates them on the cloud"), (ADOPT, "I have machines already")]),
        InputField("prov_image", "Image", required=False, when=("provision_mode", CREATE),
                   help="empty: best Ubuntu 24.04/22.04, Debian 12"),
        InputField("prov_login_user", "Login user", required=False, when=("provision_mode", CREATE),
                   help="empty: from the image"),
        InputField("prov_flavor_control_plane", "Flavor (control plane)", required=False,
                   when=("provision_mode", CREATE), help="empty: smallest 2 vCPU/2 GB"),
        InputField("prov_flavor_worker", "Flavor (workers)", required=False, when=("provision_mode", CREATE),
                   help="empty: smallest 1 vCPU/1 GB"),
        InputField("prov_network", "Network", required=False, when=("provision_mode", CREATE),
                   help="empty: labtui creates one"),
        InputField("prov_external_network", "External network", required=False, when=("provision_mode", CREATE),
                   help="router + floating IP, e.g. public"),
        InputField("prov_floating_ip", "Floating IP", kind="bool", default=True, required=False,
                   when=("provision_mode", CREATE), help="on the control plane; the way in"),
        InputField("prov_ssh_cidr", "SSH source", required=False, when=("provision_mode", CREATE),
                   help="empty: your own address"),
        InputField("prov_keypair", "Keypair", required=False, when=("provision_mode", CREATE),
                   help="empty: import the public key file"),
        InputField("prov_public_key_file", "Public key file", kind="path", default=DEFAULT_PUBLIC_KEY,
                   required=False, when=("provision_mode", CREATE)),
        InputField("prov_availability_zone", "Availability zone", required=False, when=("provision_mode", CREATE),
                   help="empty: the cloud's default"),
        InputField("prov_dns_nameservers", "DNS servers", required=False, when=("provision_mode", CREATE),
                   help="of the new subnet, e.g. 9.9.9.9, 1.1.1.1; empty: the cloud's DHCP default"),
    ]

    def skip_reason(self, ctx: StepContext) -> str | None:
        if not lab_cloud(ctx):
            return "no cloud: the lab adopts machines you already have"
        return None

    def defaults(self, ctx: StepContext) -> dict[str, Any]:
        """The saved plan's provision block when the plan came from a file (`labtui up --plan`)."""
        out = super().defaults(ctx)
        if "provision_mode" in ctx.inputs:
            return out
        saved = ctx.session.plan or {}
        block = ctx.inputs.get("provision", saved.get("provision")) if ("provision" in ctx.inputs or saved) else {}
        if saved or "provision" in ctx.inputs:
            out["provision_mode"] = CREATE if isinstance(block, dict) else ADOPT
        for key, name in PROVISION_INPUTS.items():
            if isinstance(block, dict) and block.get(key) is not None:
                out[name] = ", ".join(dns_list(block[key])) if key == "dns_nameservers" else block[key]
        return out

    def check(self, ctx: StepContext) -> CheckResult:
        reason = self.skip_reason(ctx)
        if reason:
            return CheckResult(False, reason, skip=True)
        saved = ctx.session.plan or {}
        if "provision_mode" not in ctx.inputs:
            if saved and "provision" in saved:
                return CheckResult(True, "from the saved plan")
            return CheckResult(False, "waiting for input")
        values = {f.name: ctx.inputs.get(f.name, f.default) for f in self.fields}
        errors = [p for p in self.validate(ctx, values) if p.severity == "error"]
        if errors:
            return CheckResult(False, "; ".join(f"{p.label}: {p.message}" for p in errors))
        if values.get("provision_mode") == CREATE:
            return CheckResult(True, "saved: labtui creates the machines (the Provision stage)")
        return CheckResult(True, "saved: the lab adopts machines you have")

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        import os

        mode = values.get("provision_mode")
        if mode not in (CREATE, ADOPT):
            return [Problem("provision", f"{mode!r} is not a choice", "choose 'labtui creates them' or 'I have "
                                                                     "machines already'")]
        block = provision_block({"cloud": lab_cloud(ctx) or "?", **values})
        if block is None:
            return []
        problems = provision_problems(block)
        key = os.path.expanduser(str(block.get("public_key_file") or ""))
        if not block.get("keypair"):
            if not os.path.isfile(key):
                problems.append(Problem("provision.public_key_file", f"{key} does not exist",
                                        "give your public key (.pub; create one with ssh-keygen -t ed25519), or "
                                        "name an existing keypair of the cloud"))
            elif not key.endswith(".pub"):
                problems.append(Problem("provision.public_key_file", f"{key} is not a .pub file",
                                        "give the public half of your key: labtui never uploads a private key"))
        return problems


class NodesStep(InputStep):
    id = "nodes"
    title = "Nodes"
    why = (
        "kubeadm needs one control-plane node and some workers. labtui reaches each one over SSH\n"
        "with the user and key you give here. Import them from an inventory (labtui YAML, or the\n"
        "Ansible INI / hosts.yaml that kubespray users already have) or type them in."
    )
    keys = ("nodes",)
    fields = [
        InputField("nodes", "Nodes", kind="nodes", default=[]),
        InputField("inventory", "Import from inventory file", kind="path", required=False),
    ]

    expect = "The table lists every node with its address, role, SSH user and key; one control plane and at least one worker."
    by_hand = "ssh -i KEY_FILE USER@ADDRESS hostname   # for each node: labtui logs in the same way"
    glossary = ("host key",)

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        nodes = values.get("nodes") or []
        workers = worker_problems(nodes)  # "no worker node" is an error here, said once
        said = {(p.field, p.message) for p in workers}
        return [p for p in node_problems(nodes, None) if (p.field, p.message) not in said] + workers \
            + key_file_problems(nodes)

    @staticmethod
    def import_inventory(path: str) -> list[dict[str, Any]]:
        return load_inventory(path)


class NetworksStep(InputStep):
    id = "networks"
    title = "Networks"
    why = (
        "Three address ranges must never overlap: the subnet your VMs sit on, the pod CIDR that\n"
        "Calico hands out to pods, and the service CIDR for ClusterIPs. An overlap makes some\n"
        "addresses unreachable in ways that are very hard to debug. (kubeadm's default service CIDR\n"
        "10.96.0.0/12 covers 10.96-10.111.x.x: a 10.100.200.0/24 node subnet is inside it.)"
    )
    keys = ("node_subnet", "pod_cidr", "service_cidr")
    expect = "Three ranges that do not overlap, e.g. nodes 10.100.200.0/24, pods 172.16.0.0/16, services 172.20.0.0/16."
    by_hand = "ip -4 -o addr show   # on a node: the subnet its interface is on"
    glossary = ("node subnet", "pod CIDR", "service CIDR")

    def defaults(self, ctx: StepContext) -> dict[str, Any]:
        subnet = ctx.inputs.get("node_subnet") or guess_subnet(n.get("address", "") for n in ctx.inputs.get("nodes") or [])
        nets = default_networks(subnet)
        return {
            "node_subnet": subnet or "",
            "pod_cidr": ctx.inputs.get("pod_cidr") or nets["pod_cidr"],
            "service_cidr": ctx.inputs.get("service_cidr") or nets["service_cidr"],
        }

    fields = [
        InputField("node_subnet", "Node subnet", help="the subnet of the VMs' network, e.g. 10.100.200.0/24"),
        InputField("pod_cidr", "Pod CIDR", help="Calico's IP pool; kubeadm --pod-network-cidr"),
        InputField("service_cidr", "Service CIDR", help="kubeadm --service-cidr"),
    ]

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        problems = network_problems(values.get("node_subnet"), values.get("pod_cidr"), values.get("service_cidr"))
        nodes = ctx.inputs.get("nodes") or []
        problems += [p for p in node_problems(nodes, values.get("node_subnet")) if "outside the node subnet" in p.message]
        return problems


class VersionsStep(InputStep):
    id = "versions"
    title = "Versions and encapsulation"
    why = (
        "The encapsulation decides what your cloud must let through between the nodes. On\n"
        "OpenStack, Neutron drops any packet whose source is not the port's own address (anti-\n"
        "spoofing), so pod traffic must be wrapped in node-to-node packets (IPIP or VXLAN) or every\n"
        "port must allow the pod CIDR. The choice below shows what each mode needs."
    )
    keys = ("kubernetes", "calico", "encapsulation")
    expect = "On OpenStack: IPIP Always, and later a security-group rule for IP protocol 4 between the nodes."
    glossary = ("IPIP", "VXLAN", "CrossSubnet", "anti-spoofing", "allowed-address-pairs", "security group")
    fields = [
        InputField("kubernetes", "Kubernetes minor", kind="choice", default=DEFAULT_KUBERNETES,
                   choices=[(v, v + (" (default: tested with Calico 3.32)" if v == DEFAULT_KUBERNETES else "")) for v in KUBERNETES_MINORS]),
        InputField("calico", "Calico version", kind="choice", default=DEFAULT_CALICO,
                   choices=[(v, v) for v in CALICO_VERSIONS]),
        InputField("encapsulation", "Encapsulation", kind="choice", default=Encapsulation.IPIP.value,
                   choices=[(c.value.value, c.label) for c in ENCAPSULATION_CHOICES]),
    ]

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        data = {"name": ctx.session.name, "node_subnet": "10.0.0.0/24", "nodes": [], **values}
        return [p for p in collect_problems(data) if p.field in self.keys]


SOURCES_INPUTS = {k: f"src_{k}" for k in SOURCES_LABELS}  # the plan's sources field -> the wizard's input
SOURCES_DEFAULTS = {"kubernetes_repo": DEFAULT_KUBERNETES_REPO, "docker_repo": DEFAULT_DOCKER_REPO,
                    "calico_manifests": DEFAULT_CALICO_MANIFESTS}


def sources_block(inputs: dict[str, Any]) -> dict[str, Any]:
    """The plan's `sources` block from the Sources step's inputs: an empty URL is its upstream default,
    an empty proxy or mirror is none."""
    block: dict[str, Any] = {}
    for key, name in SOURCES_INPUTS.items():
        value = inputs.get(name)
        text = str(value).strip() if value is not None else ""
        block[key] = text or SOURCES_DEFAULTS.get(key)
    return block


def sources_inputs(block: dict[str, Any] | None) -> dict[str, Any]:
    """The Sources step's inputs for a plan's sources block (a plan file applied to the lab)."""
    full = SourcesSpec.model_validate(block or {}).model_dump() if isinstance(block, dict) else SourcesSpec().model_dump()
    return {name: "" if full.get(key) is None else str(full[key]) for key, name in SOURCES_INPUTS.items()}


def sources_summary(block: dict[str, Any] | None) -> str:
    """One line for a plan summary or a dry run: the settings that differ from upstream, else 'upstream'."""
    try:
        spec = SourcesSpec.model_validate(block or {})
    except Exception:  # an invalid block is reported by validation, not here
        return "(not valid: see the Sources step)"
    custom = spec.customised
    if not custom:
        return ("upstream (pkgs.k8s.io, download.docker.com, Calico's GitHub manifests; images from their registries; "
                "no proxy)")
    return "; ".join(f"{SOURCES_LABELS[k]} {v}" for k, v in custom.items())


class SourcesStep(InputStep):
    id = "sources"
    title = "Sources (proxy, mirrors)"
    why = (
        "Where the nodes get their software: Kubernetes packages from pkgs.k8s.io, containerd from Docker's\n"
        "repository when the distribution's is too old, Calico's manifests from GitHub, images from\n"
        "docker.io, registry.k8s.io and quay.io. Behind a proxy, or with a mirror (apt-cacher-ng, a registry\n"
        "cache), change them here; the defaults below are the upstream locations. Leave a field as it is\n"
        "and the node goes there directly."
    )
    expect = "The upstream defaults, or your proxy and mirrors as http(s) URLs; nothing is contacted yet."
    by_hand = "curl -sI --proxy http://PROXY:PORT https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release   # from a node"
    validate_as_typed = True  # the screen shows a bad URL while it is typed, before the save
    fields = [
        InputField("src_http_proxy", "HTTP proxy", required=False, default="",
                   help="apt and containerd go through it, e.g. http://10.0.0.1:3142; empty: direct"),
        InputField("src_no_proxy", "No proxy for", required=False, default="",
                   help="extra hosts/CIDRs, comma-separated (nodes, pods, services are added)"),
        InputField("src_kubernetes_repo", "Kubernetes packages", required=False, default=DEFAULT_KUBERNETES_REPO,
                   help="the base before /v1.36/deb/"),
        InputField("src_docker_repo", "Docker packages", required=False, default=DEFAULT_DOCKER_REPO,
                   help="the base before /ubuntu or /debian"),
        InputField("src_calico_manifests", "Calico manifests", required=False, default=DEFAULT_CALICO_MANIFESTS,
                   help="the base before /v3.32.2/manifests/"),
        InputField("src_registry_mirror", "Registry mirror", required=False, default="",
                   help="host[:port] for docker.io, registry.k8s.io, quay.io; empty: direct"),
    ]

    def defaults(self, ctx: StepContext) -> dict[str, Any]:
        """The inputs, else the saved plan's sources (a plan file), else the upstream defaults."""
        if any(name in ctx.inputs for name in SOURCES_INPUTS.values()):
            return super().defaults(ctx)
        saved = (ctx.session.plan or {}).get("sources")
        return sources_inputs(saved if isinstance(saved, dict) else None)

    def check(self, ctx: StepContext) -> CheckResult:
        if not any(name in ctx.inputs for name in SOURCES_INPUTS.values()):
            saved = (ctx.session.plan or {}).get("sources")
            # optional: a lab that never opened this step uses the upstream locations
            return CheckResult(True, ("from the saved plan: " if saved else "") + sources_summary(saved))
        errors = [p for p in self.validate(ctx, dict(ctx.inputs)) if p.severity == "error"]
        if errors:
            return CheckResult(False, "; ".join(f"{p.label}: {p.message}" for p in errors))
        return CheckResult(True, "saved: " + sources_summary(sources_block(ctx.inputs)))

    def validate(self, ctx: StepContext, values: dict[str, Any]) -> list[Problem]:
        return sources_problems(sources_block(values))


def plan_sources(inputs: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any] | None:
    """The plan's sources: the Sources step's inputs win, else the saved plan's block (None: defaults)."""
    if any(name in inputs for name in SOURCES_INPUTS.values()):
        return sources_block(inputs)
    block = inputs.get("sources", saved.get("sources"))
    return block if isinstance(block, dict) else None


class ReviewStep(Step):
    id = "review"
    title = "Review and save"
    why = (
        "Everything above, checked together. Saving writes the plan to this lab; nothing is\n"
        "created on the cloud or the nodes yet. You can come back and change any step."
    )

    def _data(self, ctx: StepContext) -> dict[str, Any]:
        keys = ("cloud", "nodes", "node_subnet", "pod_cidr", "service_cidr", "kubernetes", "calico", "encapsulation",
                "provision")
        saved = ctx.session.plan or {}
        data = {k: ctx.inputs[k] if k in ctx.inputs else saved[k] for k in keys if k in ctx.inputs or k in saved}
        data["name"] = ctx.session.name
        data["cloud"] = data.get("cloud") or None
        if "provision_mode" in ctx.inputs:  # the Machines step's inputs win over a plan file's block
            data["provision"] = provision_block({**ctx.inputs, "cloud": data["cloud"]})
        sources = plan_sources(ctx.inputs, saved)
        if sources is not None:
            data["sources"] = sources
        return data

    expect = "The whole plan on one page with no ✗; a warning (!) says what it will cost you and offers a way out."
    glossary = ("CrossSubnet", "anti-spoofing", "pod CIDR")

    def problems(self, ctx: StepContext) -> list[Problem]:
        data = self._data(ctx)
        nodes = data.get("nodes") or []
        problems = [p for p in collect_problems(data) if not (p.field == "nodes" and p.message == "no worker node")]
        problems += worker_problems(nodes) + key_file_problems(nodes)
        trap = one_subnet_crosssubnet(data)
        return problems + ([trap] if trap else [])

    @staticmethod
    def use_always(ctx: StepContext) -> str:
        """The review's offer: switch a CrossSubnet plan to its Always variant (saved as an input)."""
        enc = str(ctx.inputs.get("encapsulation") or "")
        better = Encapsulation.VXLAN.value if enc == Encapsulation.VXLAN_CROSS_SUBNET.value else Encapsulation.IPIP.value
        ctx.store.save_inputs(ctx.session.name, {"encapsulation": better})
        ctx.reload()
        return better

    def check(self, ctx: StepContext) -> CheckResult:
        if not ctx.session.plan:
            return CheckResult(False, "the plan is not saved yet")
        try:
            current = Plan.parse(self._data(ctx)).model_dump(mode="json")
        except LabError as exc:
            return CheckResult(False, exc.render())
        try:  # the saved plan as this labtui writes it (an older one lacks newer fields' defaults)
            saved = Plan.parse(ctx.session.plan).model_dump(mode="json")
        except Exception:  # a saved plan this labtui cannot read is simply not the current one
            saved = ctx.session.plan
        if current != saved:
            return CheckResult(False, "the inputs changed since the plan was saved")
        return CheckResult(True, "plan saved")

    def plan(self, ctx: StepContext) -> list[Action]:
        errors = [p for p in self.problems(ctx) if p.severity == "error"]
        if errors:
            raise ValidationFailed(errors)
        plan = Plan.parse(self._data(ctx))  # raises ValidationFailed (a LabError) with every problem
        return [Action(
            id="save-plan", title="Save the plan", kind="local", risk=Risk.LOCAL,
            command=(f"labtui: save plan {plan.name} ({len(plan.nodes)} nodes, {plan.encapsulation.value}; "
                     f"sources: {sources_summary(plan.sources.model_dump())})"),
            run=lambda c, a, plan=plan: self._save(c, plan),
        )]

    @staticmethod
    def _save(ctx: StepContext, plan: Plan) -> dict[str, Any]:
        data = plan.model_dump(mode="json")
        ctx.store.update_session(ctx.session.name, plan=data, cloud=plan.cloud)
        return {"nodes": len(plan.nodes)}


def build() -> Wizard:
    return Wizard("plan", "Plan", [LabStep(), MachinesStep(), NodesStep(), NetworksStep(), VersionsStep(),
                                   SourcesStep(), ReviewStep()])
