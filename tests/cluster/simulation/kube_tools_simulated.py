#!/usr/bin/python3 -S
# SIMULATED cluster-build tools for labtui's tests (tests/cluster): one script installed on a test
# node's PATH (/usr/local/bin) under the names of the tools that cannot run here: apt-get, apt-mark,
# systemctl, containerd, crictl, curl, gpg, kubeadm, kubelet, kubectl (and apt-cache, ctr). It replays the real tools'
# output (tests/cluster/simulation/recorded/, kubeadm's text as kubeadm prints it) and keeps a little
# state so a re-run sees what the last run did:
#   - on the node: /tmp/labtui-sim/node.json (installed packages, holds, services); the files the
#     real tools write (/etc/containerd, /etc/kubernetes, /etc/apt) go to their real paths, which
#     the tests put on a per-node overlay of /etc;
#   - for the cluster (what the API server's etcd would hold): cluster.json in a directory all the
#     nodes of the lab share (tokens, registered nodes, applied Calico objects).
# The scenario comes from /usr/local/bin/labtui-build-sim.json. (`python3 -S`, few imports: these run
# dozens of times per node.)
#
# MACHINE mode (real Debian test machines, tests/harness/aptrepo.py): the same script is the payload
# of the stand-in packages kubeadm, kubelet, kubectl and cri-tools, installed by the machine's real apt
# at /usr/lib/labtui-simulation/<package>/ and run by thin /usr/bin wrappers. There apt-get, apt-mark,
# systemctl, containerd, ctr, curl and gpg are the real ones, so this script keeps no node state of its
# own: a tool is installed when its package is (its version file), containerd is up when its socket
# answers `ctr version`, the kubelet runs under the real systemd. The cluster's shared state is
# /run/labtui-simulation (a host directory bind-mounted into every machine), with an optional
# scenario.json there (delays, calico_waiting, ...) and a per-machine /etc/labtui-simulation.json.
# Every invocation there ends with a "SIMULATED <tool>" line on stderr (stdout is left as the tool's).
import fcntl
import json
import os
import re
import sys
import time

BIN = os.path.dirname(os.path.abspath(__file__))
MACHINE = not os.path.exists(os.path.join(BIN, "labtui-build-sim.json"))
# (the environment may move both, for tests of the packages' payload outside a machine)
MACHINE_CLUSTER_DIR = os.environ.get("LABTUI_SIMULATION_DIR", "/run/labtui-simulation")
SIM_PACKAGES = os.environ.get("LABTUI_SIMULATION_PACKAGES", "/usr/lib/labtui-simulation")
TOOL = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]


def _machine_address():
    """The address a default route leaves from (no packet is sent)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _machine_conf():
    import socket

    conf = {"node": socket.gethostname(), "address": _machine_address(), "cluster_dir": MACHINE_CLUSTER_DIR,
            "delays": {}, "calico_waiting": {}}
    for path in (os.path.join(MACHINE_CLUSTER_DIR, "scenario.json"), "/etc/labtui-simulation.json"):
        try:
            conf.update(json.load(open(path)))
        except (OSError, ValueError):
            pass
    return conf


if MACHINE:
    CONF = _machine_conf()
    import atexit

    def _banner():
        sys.stdout.flush()
        sys.stderr.write(f"SIMULATED {TOOL} (labtui test stand-in package, not the real {TOOL})\n")
        sys.stderr.flush()

    atexit.register(_banner)
else:
    CONF = json.load(open(os.path.join(BIN, "labtui-build-sim.json")))
NODE_STATE = "/tmp/labtui-sim/node.json"
# what kubeadm init writes when the scenario gives none: kubeadm's shape (controlPlaneEndpoint as the
# server, the kubernetes-admin user), with SIMULATED certificate data
SIMULATED_ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: U0lNVUxBVEVE
    server: https://{address}:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
users:
- name: kubernetes-admin
  user:
    client-certificate-data: U0lNVUxBVEVE
    client-key-data: U0lNVUxBVEVEIEtFWQ==
"""
CLUSTER_DIR = CONF["cluster_dir"]


def out(text=""):
    sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    sys.stdout.flush()


def err(text):
    sys.stderr.write(text + ("\n" if not text.endswith("\n") else ""))
    sys.stderr.flush()


def delay(name):
    d = float(CONF.get("delays", {}).get(name, 0))
    if d:
        time.sleep(d)


def recorded(name):
    return open(os.path.join(BIN, name)).read()


class Locked:
    """Read-modify-write of a JSON state file under flock (parallel joins share the cluster)."""

    def __init__(self, path, default):
        self.path, self.default = path, default

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            self.data = json.load(open(self.path))
        except (OSError, ValueError):
            self.data = json.loads(json.dumps(self.default))
        return self.data

    def __exit__(self, *exc):
        if exc[0] is None:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(self.data, fh)
            os.replace(tmp, self.path)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def node_state():
    return Locked(NODE_STATE, {"packages": {}, "held": [], "services": {}})


def cluster():
    return Locked(os.path.join(CLUSTER_DIR, "cluster.json"), {"initialized": False, "tokens": {}, "nodes": {}, "objects": {}})


def read(path, default):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return default


def installed(pkg):
    if MACHINE:  # the stand-in package's version file exists while dpkg has the package installed
        try:
            return open(os.path.join(SIM_PACKAGES, pkg, "version")).read().strip()
        except OSError:
            return None
    return read(NODE_STATE, {"packages": {}})["packages"].get(pkg)


def containerd_active():
    """Whether the container runtime answers: the simulated service state, or on a machine the real
    containerd's socket answering `ctr version`."""
    if not MACHINE:
        return read(NODE_STATE, {"services": {}}).get("services", {}).get("containerd", {}).get("active")
    return _ctr("version") is not None


def _ctr(*args, socket="/run/containerd/containerd.sock"):
    """The real ctr's output on a machine, or None when containerd does not answer."""
    import subprocess

    if not os.path.exists(socket):
        return None
    try:
        res = subprocess.run(["ctr", "--address", socket, "--timeout", "5s", *args], capture_output=True,
                             text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def set_kubelet(active):
    """kubeadm starting (init, join) or stopping (reset) the kubelet."""
    if MACHINE:
        import subprocess

        if os.path.isdir("/run/systemd/system"):
            subprocess.run(["systemctl", "restart" if active else "stop", "kubelet"], capture_output=True)
        return
    with node_state() as st:
        st["services"].setdefault("kubelet", {"enabled": True})["active"] = active


def not_installed():
    # as the shell says when the command does not exist (the tool is not installed yet)
    err(f"sh: 1: {TOOL}: not found")
    sys.exit(127)


def k8s_version():
    if MACHINE:  # the version of the package this copy came with
        return installed(os.path.basename(BIN)) or CONF.get("kubernetes_version", "1.36.2")
    return CONF.get("kubernetes_version", "1.36.2")


# --------------------------------------------------------------------------- apt


def _words(argv):
    """The non-option words (`-o NAME=VALUE` takes its value along)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out


def apt_get():
    args = _words(ARGS)
    if not args:
        err("E: Invalid operation")
        sys.exit(100)
    op, pkgs = args[0], args[1:]
    if op == "update":
        delay("apt-update")
        out("Hit:1 http://archive.ubuntu.com/ubuntu noble InRelease")
        out("Hit:2 http://security.ubuntu.com/ubuntu noble-security InRelease")
        if os.path.exists("/etc/apt/sources.list.d/kubernetes.list"):
            m = re.search(r"v(1\.\d+)", open("/etc/apt/sources.list.d/kubernetes.list").read())
            out(f"Get:3 https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:/v{m.group(1)}/deb  InRelease [1,227 B]")
        out("Reading package lists... Done")
        return
    if op in ("install", "remove", "purge"):
        delay("apt-install" if op == "install" else "apt-remove")
        versions = {"cri-tools": "1.36.0",
                    "containerd": CONF.get("containerd_version", "1.7.24"),
                    "containerd.io": CONF.get("containerd_version", "2.2.1"),
                    "kubelet": k8s_version(), "kubeadm": k8s_version(), "kubectl": k8s_version()}
        out("Reading package lists... Done")
        out("Building dependency tree... Done")
        with node_state() as st:
            for spec in pkgs:
                name, _, want = spec.partition("=")
                if op == "install":
                    if name in st["held"] and st["packages"].get(name) and "--allow-change-held-packages" not in ARGS:
                        out(f"{name} is already the newest version ({st['packages'][name]}).")
                        continue
                    if name in ("kubelet", "kubeadm", "kubectl", "cri-tools") and not os.path.exists("/etc/apt/sources.list.d/kubernetes.list"):
                        err(f"E: Unable to locate package {name}")
                        sys.exit(100)
                    version = versions.get(name, "1.0")
                    if want and not re.fullmatch(want.replace(".", r"\.").replace("*", ".*"), version + "-1.1"):
                        err(f"E: Version '{want}' for '{name}' was not found")
                        sys.exit(100)
                    st["packages"][name] = version
                    out(f"Setting up {name} ({version}-1.1) ...")
                else:
                    if st["packages"].pop(name, None):
                        out(f"Removing {name} ...")
        return
    err(f"E: Invalid operation {op}")
    sys.exit(100)


def apt_cache():
    args = _words(ARGS)
    if args[:1] == ["policy"]:
        for pkg in args[1:]:
            cand = CONF.get("candidates", {}).get(pkg, CONF.get("containerd_version", "2.2.1") + "-0ubuntu1")
            out(f"{pkg}:")
            out(f"  Installed: {installed(pkg) or '(none)'}")
            out(f"  Candidate: {cand or '(none)'}")
        return
    err(f"E: simulated apt-cache: unsupported {' '.join(args)}")
    sys.exit(100)


def apt_mark():
    op, pkgs = ARGS[0], ARGS[1:]
    with node_state() as st:
        if op == "hold":
            for p in pkgs:
                if p not in st["held"]:
                    st["held"].append(p)
                out(f"{p} set on hold.")
        elif op == "unhold":
            for p in pkgs:
                if p in st["held"]:
                    st["held"].remove(p)
                out(f"Canceled hold on {p}.")
        elif op == "showhold":
            for p in sorted(st["held"]):
                out(p)


# --------------------------------------------------------------------------- services


def systemctl():
    args = [a for a in ARGS if not a.startswith("-")]
    quiet = "--quiet" in ARGS or "-q" in ARGS
    if args[:1] == ["is-system-running"]:
        out("running")
        return
    if args[:1] == ["daemon-reload"]:
        return
    op, units = args[0], args[1:]
    with node_state() as st:
        for unit in units:
            unit = unit.removesuffix(".service")
            pkg = {"containerd": "containerd", "kubelet": "kubelet"}.get(unit)
            svc = st["services"].setdefault(unit, {"enabled": False, "active": False})
            if pkg and not (st["packages"].get(pkg) or st["packages"].get(pkg + ".io")):
                if op in ("is-active", "is-enabled"):
                    if not quiet:
                        out("inactive" if op == "is-active" else "disabled")
                    sys.exit(3 if op == "is-active" else 1)
                err(f"Failed to {op} {unit}.service: Unit {unit}.service not found.")
                sys.exit(5)
            if op in ("restart", "start"):
                delay("restart")
                svc["active"] = True
            elif op == "stop":
                svc["active"] = False
            elif op == "enable":
                svc["enabled"] = True
                if "--now" in ARGS:
                    svc["active"] = True
            elif op == "disable":
                svc["enabled"] = False
            elif op == "is-active":
                if not quiet:
                    out("active" if svc["active"] else "inactive")
                if not svc["active"]:
                    sys.exit(3)
            elif op == "is-enabled":
                if not quiet:
                    out("enabled" if svc["enabled"] else "disabled")
                if not svc["enabled"]:
                    sys.exit(1)


# --------------------------------------------------------------------------- containerd, crictl


def containerd():
    version = installed("containerd") or installed("containerd.io")
    if not version:
        sys.exit(127)  # `command -v` finds this script; say nothing, as an absent tool would
    if ARGS[:1] in (["--version"], ["-v"]):
        pkg = "containerd.io" if installed("containerd.io") else "containerd"
        out(f"containerd github.com/containerd/containerd{'/v2' if version.startswith('2') else ''} "
            f"v{version} {pkg}-{version}")
        return
    if ARGS[:2] == ["config", "default"]:
        name = ("containerd2.3-config-version4.toml" if re.match(r"2\.([3-9]|\d\d)", version) else
                "containerd2-config-default.toml" if version.startswith("2") else "containerd1.6-debian12-config-default.toml")
        sys.stdout.write(recorded(name))
        return
    err(f"containerd: unknown command {' '.join(ARGS)}")
    sys.exit(1)


def ctr():
    # containerd's own client (in the containerd and containerd.io packages)
    if not (installed("containerd") or installed("containerd.io")):
        not_installed()
    active = read(NODE_STATE, {"services": {}}).get("services", {}).get("containerd", {}).get("active")
    if not active:
        err('ctr: failed to dial "/run/containerd/containerd.sock": connection error: desc = "transport: error while '
            'dialing: dial unix:///run/containerd/containerd.sock: timeout"')
        sys.exit(1)
    if "plugins" in ARGS:
        out("TYPE                                      ID                       PLATFORMS      STATUS    ")
        out("io.containerd.cri.v1                      images                   -              ok        ")
        out("io.containerd.cri.v1                      runtime                  linux/amd64    ok        ")
        out("io.containerd.grpc.v1                     cri                      -              ok        ")
        return
    out("Client:\n  Version:  v2.2.1\nServer:\n  Version:  v2.2.1")


def crictl():
    if MACHINE:
        return crictl_machine()
    if not installed("cri-tools"):
        not_installed()
    st = read(NODE_STATE, {"services": {}})
    active = st.get("services", {}).get("containerd", {}).get("active")
    if not active:
        err('time="2026-12-02T01:02:03Z" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
            'endpoint \\"unix:///run/containerd/containerd.sock\\": rpc error: code = Unavailable desc = connection error: '
            'desc = \\"transport: Error while dialing: dial unix /run/containerd/containerd.sock: connect: no such file or directory\\""')
        sys.exit(1)
    if "info" in ARGS:
        out(json.dumps({"status": {"conditions": [
            {"type": "RuntimeReady", "status": True, "reason": "", "message": ""},
            {"type": "NetworkReady", "status": False, "reason": "NetworkPluginNotReady",
             "message": "Network plugin returns error: cni plugin not initialized"}]}}, indent=2))
        return
    out("CONTAINER           IMAGE               CREATED             STATE               NAME")


def _crictl_endpoint():
    for i, a in enumerate(ARGS):
        if a in ("--runtime-endpoint", "-r") and i + 1 < len(ARGS):
            return ARGS[i + 1]
        if a.startswith("--runtime-endpoint="):
            return a.split("=", 1)[1]
    try:
        m = re.search(r"runtime-endpoint:\s*(\S+)", open("/etc/crictl.yaml").read())
        if m:
            return m.group(1)
    except OSError:
        pass
    return "unix:///run/containerd/containerd.sock"


def crictl_machine():
    """crictl against the machine's real containerd, through ctr: `info`, `version`, `ps`, `images`."""
    endpoint = _crictl_endpoint()
    sock = endpoint.split("://", 1)[-1]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    version = _ctr("version", socket=sock)
    if version is None:
        why = "connect: no such file or directory" if not os.path.exists(sock) else "connect: connection refused"
        err(f'time="{stamp}" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
            f'endpoint \\"{endpoint}\\": rpc error: code = Unavailable desc = connection error: '
            f'desc = \\"transport: Error while dialing: dial unix {sock}: {why}\\""')
        sys.exit(1)
    plugins = _ctr("plugins", "ls", socket=sock) or ""
    cri = any(ln.split()[:2] == ["io.containerd.grpc.v1", "cri"] and ln.split()[-1] == "ok"
              for ln in plugins.splitlines() if len(ln.split()) >= 3)
    if not cri:  # e.g. containerd.io's own config.toml: disabled_plugins = ["cri"]
        err(f'time="{stamp}" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
            f'endpoint \\"{endpoint}\\": rpc error: code = Unimplemented desc = unknown service '
            f'runtime.v1.RuntimeService"')
        sys.exit(1)
    server = re.search(r"Server:\s*\n\s*Version:\s*(\S+)", version)
    words, skip = [], False
    for a in ARGS:
        if skip:
            skip = False
        elif a in ("--runtime-endpoint", "-r", "--image-endpoint", "-i", "--timeout", "-t", "--config", "-c"):
            skip = True
        elif not a.startswith("-"):
            words.append(a)
    if words[:1] == ["version"]:
        out("Version:  0.1.0")
        out("RuntimeName:  containerd")
        out(f"RuntimeVersion:  {server.group(1) if server else 'unknown'}")
        out("RuntimeApiVersion:  v1")
        return
    if words[:1] == ["info"]:
        out(json.dumps({"status": {"conditions": [
            {"type": "RuntimeReady", "status": True, "reason": "", "message": ""},
            {"type": "NetworkReady", "status": False, "reason": "NetworkPluginNotReady",
             "message": "Network plugin returns error: cni plugin not initialized"}]}}, indent=2))
        return
    if words[:1] == ["images"]:
        out("IMAGE                                     TAG                 IMAGE ID            SIZE")
        for ref in (_ctr("-n", "k8s.io", "images", "ls", "-q", socket=sock) or "").split():
            if ":" in ref.rsplit("/", 1)[-1] and "@" not in ref:
                name, tag = ref.rsplit(":", 1)
                out(f"{name:<41} {tag:<19} {'-':<19} -")
        return
    if words[:1] == ["ps"]:
        out("CONTAINER           IMAGE               CREATED             STATE               NAME"
            "                ATTEMPT             POD ID              POD")
        for cid in (_ctr("-n", "k8s.io", "containers", "ls", "-q", socket=sock) or "").split():
            out(f"{cid[:13]:<19} -                   -                   Running             -")
        return
    err(f"simulated crictl: unsupported: {' '.join(ARGS)}")
    sys.exit(1)


# --------------------------------------------------------------------------- downloads


def curl():
    url = next((a for a in ARGS if a.startswith("http")), "")
    dest = ARGS[ARGS.index("-o") + 1] if "-o" in ARGS else None
    delay("download")
    if CONF.get("offline"):
        err(f"curl: (6) Could not resolve host: {url.split('/')[2] if '//' in url else url}")
        sys.exit(6)
    if "pkgs.k8s.io" in url and url.endswith("Release.key"):
        body = recorded("pkgs-k8s-io-release-key.asc")
    elif "download.docker.com" in url and url.endswith("/gpg"):
        body = recorded("pkgs-k8s-io-release-key.asc").replace("pkgs.k8s.io", "download.docker.com")
    elif "projectcalico/calico" in url:
        name = url.rsplit("/", 1)[-1]
        if name == "operator-crds.yaml":  # the same blob as v1_crd_projectcalico_org.yaml at v3.32.1
            name = "v1_crd_projectcalico_org.yaml"
        try:
            body = recorded("calico-" + name)
        except OSError:
            err("curl: (22) The requested URL returned error: 404")
            sys.exit(22)
    else:
        err(f"curl: (6) Could not resolve host: {url}")
        sys.exit(6)
    if dest:
        open(dest, "w").write(body)
    else:
        sys.stdout.write(body)


def gpg():
    data = sys.stdin.read()
    if "--dearmor" not in ARGS or "-o" not in ARGS:
        err("gpg: simulated: only `gpg --dearmor -o FILE` is supported")
        sys.exit(2)
    dest = ARGS[ARGS.index("-o") + 1]
    if os.path.exists(dest) and "--yes" not in ARGS:
        err(f"gpg: signal Interrupt caught ... exiting (File '{dest}' exists. Overwrite? (y/N))")
        sys.exit(2)
    if "BEGIN PGP PUBLIC KEY BLOCK" not in data:
        err("gpg: no valid OpenPGP data found.")
        sys.exit(2)
    open(dest, "wb").write(b"\x99\x01\x0d" + data.encode()[:64])


# --------------------------------------------------------------------------- kubelet, kubeadm


def kubelet():
    if not installed("kubelet"):
        not_installed()
    if ARGS[:1] == ["--version"]:
        out(f"Kubernetes v{installed('kubelet')}")
        return
    if MACHINE:
        kubelet_service()


def kubelet_service():
    """The kubelet as systemd runs it on a machine: without kubeadm's config it exits (systemd restarts
    it every 10 s: the crash loop a real kubelet shows before `kubeadm init/join`); with it, it stays up
    and answers /healthz on 127.0.0.1:10248. It runs no pods."""
    config = "/var/lib/kubelet/config.yaml"
    if not os.path.exists(config):
        err(f'E1202 01:02:03.000000 run.go:72] "command failed" err="failed to load kubelet config file, '
            f'path: {config}, error: failed to load Kubelet config file {config}, error failed to read '
            f'kubelet config file \\"{config}\\", error: open {config}: no such file or directory"')
        sys.exit(1)
    import http.server

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"ok" if self.path.startswith("/healthz") else b"404 page not found"
            self.send_response(200 if body == b"ok" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    out(f"SIMULATED kubelet v{installed('kubelet')}: running, /healthz on 127.0.0.1:10248, no pods "
        f"(cluster state in {CLUSTER_DIR})")
    http.server.HTTPServer(("127.0.0.1", 10248), Health).serve_forever()


def _listening(port):
    import subprocess

    try:
        text = subprocess.run(["ss", "-Htln"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return any(line.split()[3].rsplit(":", 1)[-1] == str(port) for line in text.splitlines() if len(line.split()) > 3)


def _swap_on():
    try:
        return len([ln for ln in open("/proc/swaps").read().splitlines()[1:] if ln.strip()]) > 0
    except OSError:
        return False


def _cgroup_v1():
    import subprocess

    try:
        return subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True, text=True).stdout.strip() != "cgroup2fs"
    except OSError:
        return False


def _preflight(ports, files, control_plane):
    """kubeadm's preflight checks (cmd/kubeadm/app/preflight/checks.go) on this node's real state."""
    errors = []
    if not containerd_active():
        errors.append(("CRI", 'could not connect to the container runtime: validate CRI v1 runtime API for endpoint '
                              '"unix:///run/containerd/containerd.sock": rpc error: code = Unavailable'))
    if _cgroup_v1():
        errors.append(("SystemVerification", "cgroups v1 support is unsupported and will be removed in a future release. "
                                             "Please migrate to cgroups v2. To explicitly enable cgroups v1 support for "
                                             "kubelet v1.35 or newer, you must set the kubelet configuration option "
                                             "'FailCgroupV1' to 'false'"))
    for port in ports:
        if _listening(port):
            errors.append((f"Port-{port}", f"Port {port} is in use"))
    for path in files:
        if os.path.exists(path):
            errors.append(("FileAvailable-" + path.replace("/", "-"), f"{path} already exists"))
    if _swap_on():
        errors.append(("Swap", "running with swap on is not supported. Please disable swap"))
    if errors:
        out("[preflight] Running pre-flight checks")
        err("error execution phase preflight: [preflight] Some fatal errors occurred:")
        for name, text in errors:
            err(f"\t[ERROR {name}]: {text}")
        err("[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`")
        err("To see the stack trace of this error execute with --v=5 or higher")
        sys.exit(1)


def _new_token(cl, ttl=86400):
    import secrets

    token = secrets.token_hex(3)[:6] + "." + secrets.token_hex(8)[:16]
    cl["tokens"][token] = time.time() + ttl
    return token


def _write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


def kubeadm():
    if not installed("kubeadm"):
        not_installed()
    if ARGS[:1] == ["version"]:
        out(f"v{installed('kubeadm')}" if "short" in ARGS else f'kubeadm version: &version.Info{{Major:"1", GitVersion:"v{installed("kubeadm")}"}}')
        return
    if ARGS[:1] == ["init"]:
        return kubeadm_init()
    if ARGS[:1] == ["join"]:
        return kubeadm_join()
    if ARGS[:1] == ["reset"]:
        return kubeadm_reset()
    if ARGS[:2] == ["token", "create"]:
        with cluster() as cl:
            if not cl["initialized"]:
                err("failed to load admin kubeconfig: open /etc/kubernetes/admin.conf: no such file or directory")
                sys.exit(1)
            token = _new_token(cl)
            out(f"kubeadm join {cl['endpoint']} --token {token} --discovery-token-ca-cert-hash {cl['ca_hash']} ")
        return
    err(f"unknown command {ARGS[:1]} for \"kubeadm\"")
    sys.exit(1)


def kubeadm_init():
    config = ARGS[ARGS.index("--config") + 1] if "--config" in ARGS else None
    try:
        text = open(config).read() if config else ""
    except OSError as exc:
        err(f"unable to read config from \"{config}\" : open {config}: {exc.strerror.lower()}")
        sys.exit(1)
    node = re.search(r"\n\s*name: (\S+)", text).group(1) if "name:" in text else CONF["node"]
    address = re.search(r"advertiseAddress: (\S+)", text).group(1) if "advertiseAddress" in text else CONF["address"]
    endpoint = re.search(r"controlPlaneEndpoint: (\S+)", text).group(1) if "controlPlaneEndpoint" in text else f"{address}:6443"
    version = re.search(r"kubernetesVersion: (\S+)", text).group(1) if "kubernetesVersion" in text else "v" + k8s_version()
    _preflight([6443, 10259, 10257, 10250, 2379, 2380],
               ["/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/manifests/kube-controller-manager.yaml",
                "/etc/kubernetes/manifests/kube-scheduler.yaml", "/etc/kubernetes/manifests/etcd.yaml"], True)
    delay("init")
    lines = recorded("kubeadm-init.txt").splitlines()
    cut = next(i for i, ln in enumerate(lines) if ln.startswith("[wait-control-plane]"))
    for path in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        _write(f"/etc/kubernetes/manifests/{path}.yaml", f"# static pod manifest ({path}), simulated\n", 0o600)
    fill = dict(version=version, node=node, address=address, service_ip="10.96.0.1", endpoint=endpoint)
    if CONF.get("init_breaks_at_wait_control_plane"):
        for ln in lines[:cut + 1]:
            out(ln.format(**fill, token="", ca_hash=""))
        out("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s")
        err("[kubelet-check] The kubelet is not healthy after 4m0.000439288s")
        err("error execution phase wait-control-plane: failed while waiting for the kubelet to start: "
            "The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned error: "
            "Get \"http://127.0.0.1:10248/healthz\": dial tcp 127.0.0.1:10248: connect: connection refused")
        sys.exit(1)
    with cluster() as cl:
        token = _new_token(cl)
        import secrets

        cl.update(initialized=True, endpoint=endpoint, ca_hash="sha256:" + secrets.token_hex(32), control_plane=node)
        cl["nodes"][node] = {"role": "control-plane", "address": address, "kubelet_version": k8s_version()}
        ca_hash = cl["ca_hash"]
    _write("/etc/kubernetes/admin.conf", CONF.get("admin_conf") or SIMULATED_ADMIN_CONF.format(address=CONF["address"]))
    _write("/etc/kubernetes/kubelet.conf", "apiVersion: v1\nkind: Config\n")
    _write("/etc/kubernetes/pki/ca.crt", "-----BEGIN CERTIFICATE-----\nsimulated\n-----END CERTIFICATE-----\n", 0o644)
    _kubelet_files()
    set_kubelet(True)
    for ln in lines:
        out(ln.format(**fill, token=token, ca_hash=ca_hash))


def _kubelet_files():
    """What kubeadm's kubelet-start phase writes for the kubelet (on a machine the unit reads them)."""
    if MACHINE:
        _write("/var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
               "cgroupDriver: systemd\n# written by the SIMULATED kubeadm\n", 0o644)
        _write("/var/lib/kubelet/kubeadm-flags.env",
               'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock"\n', 0o644)


def kubeadm_join():
    if "--config" in ARGS:  # a JoinConfiguration (v1beta4): discovery.bootstrapToken
        text = open(ARGS[ARGS.index("--config") + 1]).read()
        endpoint = re.search(r"apiServerEndpoint: (\S+)", text).group(1)
        token = re.search(r"\btoken: (\S+)", text).group(1)
        ca_hash = re.search(r"caCertHashes:\s*\n\s*- (\S+)", text).group(1)
    else:
        endpoint = ARGS[1]
        token = ARGS[ARGS.index("--token") + 1]
        ca_hash = ARGS[ARGS.index("--discovery-token-ca-cert-hash") + 1]
    _preflight([10250], ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt"], False)
    delay("join")
    with cluster() as cl:
        if not cl["initialized"] or cl["endpoint"] != endpoint:
            out("[preflight] Running pre-flight checks")
            err(f'error execution phase preflight: couldn\'t validate the identity of the API Server: Get '
                f'"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": '
                f'dial tcp {endpoint}: connect: connection refused')
            sys.exit(1)
        expires = cl["tokens"].get(token)
        if expires is None or expires < time.time():
            out("[preflight] Running pre-flight checks")
            err("error execution phase preflight: couldn't validate the identity of the API Server: could not find a "
                f"JWS signature in the cluster-info ConfigMap for token ID \"{token.split('.')[0]}\"")
            err("To see the stack trace of this error execute with --v=5 or higher")
            sys.exit(1)
        if ca_hash != cl["ca_hash"]:
            err("error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in "
                f"cluster-info ConfigMap is invalid: none of the public keys \"{cl['ca_hash']}\" are pinned")
            sys.exit(1)
        cl["nodes"][CONF["node"]] = {"role": "worker", "address": CONF["address"], "kubelet_version": k8s_version()}
    _write("/etc/kubernetes/kubelet.conf", "apiVersion: v1\nkind: Config\n")
    _write("/etc/kubernetes/pki/ca.crt", "-----BEGIN CERTIFICATE-----\nsimulated\n-----END CERTIFICATE-----\n", 0o644)
    _kubelet_files()
    set_kubelet(True)
    sys.stdout.write(recorded("kubeadm-join.txt"))


def kubeadm_reset():
    delay("reset")
    for root, dirs, files in os.walk("/etc/kubernetes", topdown=False):
        for f in files:
            if not f.startswith("labtui-"):
                os.remove(os.path.join(root, f))
    with cluster() as cl:
        cl["nodes"].pop(CONF["node"], None)
        if cl.get("control_plane") == CONF["node"]:
            cl.update(initialized=False, tokens={}, nodes={}, objects={})
    set_kubelet(False)
    if MACHINE:  # reset cleans what init/join wrote for the kubelet
        for f in ("config.yaml", "kubeadm-flags.env"):
            try:
                os.remove(os.path.join("/var/lib/kubelet", f))
            except OSError:
                pass
    sys.stdout.write(recorded("kubeadm-reset.txt"))


# --------------------------------------------------------------------------- kubectl


def _kubectl_args():
    args, i = [], 0
    while i < len(ARGS):
        if ARGS[i] == "--kubeconfig":
            i += 2
            continue
        if ARGS[i].startswith("--kubeconfig="):
            i += 1
            continue
        args.append(ARGS[i])
        i += 1
    return args


def _calico_pods(cl):
    objs = cl["objects"]
    mode = "operator" if objs.get("Installation/default") else ("manifest" if objs.get("DaemonSet/calico-node") else None)
    if not mode:
        return []
    ns = "calico-system" if mode == "operator" else "kube-system"
    pods = []
    for name in sorted(cl["nodes"]):
        reason = CONF.get("calico_waiting", {}).get(name)
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                  "containerStatuses": [{"name": "calico-node", "ready": True, "restartCount": 0,
                                         "image": "quay.io/calico/node:v" + CONF.get("calico_version", "3.32.2"),
                                         "state": {"running": {"startedAt": "2026-12-02T01:00:00Z"}}}]}
        if reason:
            status = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}],
                      "containerStatuses": [{"name": "calico-node", "ready": False, "restartCount": 0,
                                             "image": "quay.io/calico/node:v" + CONF.get("calico_version", "3.32.2"),
                                             "state": {"waiting": {"reason": reason, "message":
                                                 'Back-off pulling image "quay.io/calico/node:v3.32.2": ErrImagePull: '
                                                 'failed to pull and unpack image: dial tcp: lookup quay.io: no such host'
                                                 if reason == "ImagePullBackOff" else "back-off 5m0s restarting failed container"}}}]}
        pods.append({"metadata": {"name": f"calico-node-{name}", "namespace": ns, "labels": {"k8s-app": "calico-node"}},
                     "spec": {"nodeName": name}, "status": status})
    return pods


def kubectl():
    if not installed("kubectl"):
        not_installed()
    args = _kubectl_args()
    if args[:2] == ["version", "--client"]:
        out(f"Client Version: v{installed('kubectl')}")
        out("Kustomize Version: v5.7.1")
        return
    if not os.path.exists("/etc/kubernetes/admin.conf"):
        err("error: error loading config file \"/etc/kubernetes/admin.conf\": open /etc/kubernetes/admin.conf: no such file or directory")
        sys.exit(1)
    with cluster() as cl:
        if not cl["initialized"]:
            err(f"The connection to the server {CONF['address']}:6443 was refused - did you specify the right host or port?")
            sys.exit(1)
        if args[:1] in (["create"], ["apply"]):
            files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
            for f in files:
                sys.path.append("/usr/lib/python3/dist-packages")  # -S: no site-packages by default
                import yaml  # only here: every other call starts faster

                text = open(f).read() if f != "-" else sys.stdin.read()
                for doc in yaml.safe_load_all(text):
                    if not doc:
                        continue
                    kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
                    key = f"{kind}/{name}"
                    if args[0] == "create" and key in cl["objects"]:
                        err(f'Error from server (AlreadyExists): error when creating "{f}": {kind.lower()}s "{name}" already exists')
                        sys.exit(1)
                    obj = {"file": os.path.basename(f)}
                    if kind == "Installation":
                        pool = doc["spec"]["calicoNetwork"]["ipPools"][0]
                        obj.update(encapsulation=pool.get("encapsulation"), cidr=pool.get("cidr"))
                    if kind == "DaemonSet" and name == "calico-node":
                        env = doc["spec"]["template"]["spec"]["containers"][0].get("env", [])
                        obj["env"] = {e["name"]: e.get("value") for e in env if "value" in e}
                    cl["objects"][key] = obj
                    group = "operator.tigera.io" if kind in ("Installation", "APIServer") else "apps"
                    out(f"{kind.lower()}.{group}/{name} {'created' if args[0] == 'create' else 'configured'}")
            return
        if args[:2] == ["get", "nodes"]:
            cni = any(k in cl["objects"] for k in ("Installation/default", "DaemonSet/calico-node"))
            waiting = CONF.get("calico_waiting", {})
            items = []
            for name, n in sorted(cl["nodes"].items()):
                ready = cni and name not in waiting
                items.append({"metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""}
                                           if n["role"] == "control-plane" else {}},
                              "status": {"addresses": [{"type": "InternalIP", "address": n["address"]}],
                                         "nodeInfo": {"kubeletVersion": "v" + n.get("kubelet_version", k8s_version())},
                                         "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                         "reason": "KubeletReady" if ready else "KubeletNotReady",
                                                         "message": "kubelet is posting ready status" if ready else
                                                         "container runtime network not ready: NetworkReady=false "
                                                         "reason:NetworkPluginNotReady message:Network plugin returns "
                                                         "error: cni plugin not initialized"}]}})
            if "-o" in args and args[args.index("-o") + 1] == "json":
                out(json.dumps({"kind": "List", "items": items}))
            else:
                out("NAME   STATUS   ROLES           AGE   VERSION")
                for it in items:
                    st = "Ready" if it["status"]["conditions"][0]["status"] == "True" else "NotReady"
                    role = "control-plane" if it["metadata"]["labels"] else "<none>"
                    out(f"{it['metadata']['name']}   {st}   {role}   1m   v{k8s_version()}")
            return
        if args[:2] == ["get", "pods"]:
            out(json.dumps({"kind": "List", "items": _calico_pods(cl)}))
            return
        if args[:1] == ["get"] and len(args) > 2:
            key = {"installation": "Installation", "daemonset": "DaemonSet"}.get(args[1].split(".")[0], args[1]) + "/" + args[2]
            if key in cl["objects"]:
                out(json.dumps({"kind": key.split("/")[0], "metadata": {"name": args[2]}, "spec": cl["objects"][key]}))
                return
            err(f'Error from server (NotFound): {args[1]} "{args[2]}" not found')
            sys.exit(1)
        if args[:2] == ["delete", "node"]:
            for name in [a for a in args[2:] if not a.startswith("-")]:
                if cl["nodes"].pop(name, None) is not None:
                    out(f'node "{name}" deleted')
            return
        if args[:1] == ["delete"]:
            files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
            for f in files:
                base = os.path.basename(f)
                for key in [k for k, v in cl["objects"].items() if v.get("file") == base]:
                    del cl["objects"][key]
                    out(f"{key.lower()} deleted")
            return
    err(f"simulated kubectl: unsupported: {' '.join(args)}")
    sys.exit(1)


TOOLS = {"apt-get": apt_get, "apt-cache": apt_cache, "ctr": ctr, "apt-mark": apt_mark, "systemctl": systemctl, "containerd": containerd,
         "crictl": crictl, "curl": curl, "gpg": gpg, "kubelet": kubelet, "kubeadm": kubeadm, "kubectl": kubectl}

if __name__ == "__main__":
    TOOLS[TOOL]()
