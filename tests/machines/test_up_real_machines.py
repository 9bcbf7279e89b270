"""The product's promise on real machines: a plan file, `labtui up NAME --plan FILE --yes` on the test
cloud provisions 3 real Debian 12 machines (systemd-nspawn booted by Nova, real cloud-init), pins their
host keys from the real console, passes the Nodes preflight on systemd, installs containerd.io and the
Kubernetes packages for real through apt (stand-in signed repositories, apt through a caching proxy:
the plan's `sources`), configures and restarts the real containerd, runs the SIMULATED kubeadm init and
join, and installs Calico (SIMULATED kubectl); a second `up` applies and records nothing; `labtui
teardown` leaves nothing on the cloud or the host. On the way, `labtui up` is killed with SIGKILL twice
(during Provision and while dpkg works on the nodes) and resumed: no duplicate server, no package left
half-configured.

Real here: Nova/Neutron/Keystone, systemd, sshd, cloud-init, apt, dpkg, apt-mark, gpg, curl, the
containerd binary and its config, the conffile handling. SIMULATED (cannot run here): the Kubernetes
binaries (kubeadm, kubelet, kubectl, crictl: tests/cluster/simulation/kube_tools_simulated.py, packaged
by tests/harness/aptrepo.py) and the Calico manifests they apply. The Calico stage's later steps and the
doctor read the cluster through the Kubernetes API, which the simulation does not serve: they are
tested against kmock in tests/kube and tests/doctor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.harness import aptrepo, machines
from tests.harness.kube import ADMIN, kubeconfig_text, operator_cluster

pytestmark = [pytest.mark.root, pytest.mark.openstack, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.123.0.0/24"
GATEWAY = "10.123.0.1"
NODES = [{"name": "cp", "address": "10.123.0.10", "role": "control-plane"},
         {"name": "w1", "address": "10.123.0.11", "role": "worker"},
         {"name": "w2", "address": "10.123.0.12", "role": "worker"}]
FLAVOR = "labtui.machine.d20"  # labtui takes only flavors with a 20 GB disk or more
TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")


def _labtui(env: dict, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "labtui", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    print(f"labtui {' '.join(argv)}: exit {run.returncode} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return run


def _steps(report: dict) -> dict[str, str]:
    return {f"{st['stage']}/{s['step']}" if "stage" in st else s["step"]: s["state"]
            for st in report["stages"] for s in st["steps"]}


def _diagnose(conn, key) -> str:
    """What the control plane says about itself, for a failure message."""
    try:
        fip = next(ip.floating_ip_address for ip in conn.network.ips())  # the control plane's
        c = machines.wait_ssh(fip, key, timeout=20)
        try:
            return machines.ssh_run(c, "cloud-init status --long; sudo tail -n 40 /var/log/cloud-init-output.log; "
                                       "systemctl --failed --no-pager", timeout=60)[1]
        finally:
            c.close()
    except Exception as exc:  # a diagnosis must not hide the failure
        return f"(no diagnosis: {exc})"


@pytest.fixture
def e2e_cloud(machines_ready):
    """A project of its own (the harness test uses another), emptied before and after."""
    from tests.machines.conftest import empty_project

    cloud = machines.ensure_project("machines-e2e")
    conn = machines.project_conn(cloud)
    empty_project(conn)
    import shutil

    # the SIMULATED cluster's shared state (what the API server would hold) starts empty
    for p in machines.SHARED_DIR.glob("*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    yield conn, cloud
    empty_project(conn)


@pytest.fixture
def repos():
    with aptrepo.serve(host="0.0.0.0", port=0) as srv:
        yield srv


def _lab_files(cloud: dict, ssh_key: Path, repos, tmp_path: Path) -> tuple[dict, Path, Path]:
    """(environment for labtui, the plan file, LABTUI_HOME) of the lab `real` on the test project."""
    adm = machines.admin_conn()
    if adm.compute.find_flavor(FLAVOR, ignore_missing=True) is None:
        adm.compute.create_flavor(name=FLAVOR, vcpus=2, ram=2048, disk=20)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"machines": cloud}}))
    clouds.chmod(0o600)
    home = tmp_path / "home"
    env = dict(os.environ, LABTUI_HOME=str(home), OS_CLIENT_CONFIG_FILE=str(clouds),
               HOME=str(tmp_path), LABTUI_SSH_KNOWN_HOSTS=str(tmp_path / "no_known_hosts"))
    plan = {
        "name": "real", "cloud": "machines", "nodes": NODES, "node_subnet": SUBNET,
        "pod_cidr": "172.16.0.0/16", "service_cidr": "172.20.0.0/16", "kubernetes": "1.36", "calico": "3.32.2",
        # this kernel has VXLAN and no IPIP module (the real-machines recipe)
        "encapsulation": "VXLAN",
        "provision": {"image": machines.IMAGE_NAME, "login_user": "debian", "flavor_control_plane": FLAVOR,
                      "flavor_worker": FLAVOR, "external_network": machines.EXT_NET, "floating_ip": True,
                      "ssh_cidr": f"{GATEWAY}/32", "public_key_file": str(ssh_key) + ".pub"},
        "sources": {"http_proxy": machines.apt_proxy_url(GATEWAY), "kubernetes_repo": repos.kubernetes_repo(GATEWAY),
                    "docker_repo": repos.docker_repo(GATEWAY), "calico_manifests": repos.calico_manifests(GATEWAY)},
    }
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan))

    return env, plan_file, home


def test_up_builds_a_cluster_on_three_real_machines(e2e_cloud, ssh_key, repos, tmp_path):
    conn, cloud = e2e_cloud
    env, plan_file, home = _lab_files(cloud, ssh_key, repos, tmp_path)
    # SIMULATED at the process boundary: the cluster's API server. kmock, loaded with what an operator
    # install of Calico with this plan leaves (the 3 nodes, pool 172.16.0.0/16 VXLAN Always, calico-node
    # Ready), listens on the host, which the machines and labtui reach at the lab subnet's gateway; the
    # simulated kubeadm init writes the admin.conf that points at it (scenario.json in the shared dir).
    api = operator_cluster(encapsulation="VXLAN", bgp="Disabled", host="0.0.0.0",
                           nodes=[(n["name"], n["address"], n["role"] == "control-plane") for n in NODES]).start()
    (machines.SHARED_DIR / "scenario.json").write_text(json.dumps(
        {"admin_conf": kubeconfig_text(f"http://{GATEWAY}:{api.port}", ADMIN)}))

    # the dry run names the sources and writes nothing
    dry = _labtui(env, "up", "real", "--plan", str(plan_file), "--dry-run", "--until", "kubernetes",
                  "--accept-new-host-keys")
    assert dry.returncode in (0, 1), dry.stdout[-3000:] + dry.stderr[-3000:]
    assert repos.kubernetes_repo(GATEWAY) in dry.stdout + dry.stderr
    assert list(conn.compute.servers()) == []

    # kill -9 twice on the way (right after Nova was asked for the first server, then while dpkg unpacks
    # containerd.io on the nodes); each rerun resumes where the record says: no duplicate server, no
    # half-configured package (checked on every node below)
    started = time.monotonic()
    log = home / "labtui.log"
    argv = [sys.executable, "-m", "labtui", "up", "real", "--yes", "--until", "kubernetes", "--quiet"]
    proc = subprocess.Popen(argv + ["--plan", str(plan_file)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_when(proc, log, "POST /compute/v2.1/servers ")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, log, "Unpacking containerd.io", timeout=900)  # dpkg at work on the nodes
    assert sorted(s.name for s in conn.compute.servers()) == ["labtui-real-cp", "labtui-real-w1", "labtui-real-w2"]
    up = _labtui(env, "up", "real", "--yes", "--json", "--until", "kubernetes", timeout=1500)
    elapsed = time.monotonic() - started
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-6000:] + _diagnose(conn, ssh_key)
    report = json.loads(up.stdout)
    states = [s["state"] for st in report["stages"] for s in st["steps"]]
    assert all(s in ("done", "skipped") for s in states), json.dumps(report, indent=1)[-4000:]
    print(f"up --until kubernetes on 3 real machines: {elapsed:.0f} s", file=sys.stderr)

    # host keys were pinned from the real console (no first-contact question: headless --yes accepts none)
    known = (home / "known_hosts").read_text()
    assert all(n["address"] in known or n["name"] in known for n in NODES) or known.count("ssh-ed25519") >= 3, known

    # on the machines themselves: real packages, held, the real containerd configured and running
    assert sorted(s.name for s in conn.compute.servers()) == ["labtui-real-cp", "labtui-real-w1", "labtui-real-w2"]
    fip = next(ip.floating_ip_address for ip in conn.network.ips())  # the control plane's: the way in
    cp = machines.wait_ssh(fip, ssh_key, timeout=60)
    try:
        for cmd, want in [
            ("dpkg-query -W -f='${Status} ${Version}' containerd.io", "install ok installed 2.1.9"),
            ("apt-mark showhold", "kubeadm"),
            ("apt-mark showhold", "cri-tools"),
            ("sudo grep -E '^\\s*SystemdCgroup\\s*=\\s*true' /etc/containerd/config.toml", "SystemdCgroup"),
            ("systemctl is-active containerd", "active"),
            ("sudo cat /etc/apt/apt.conf.d/95labtui-proxy", machines.apt_proxy_url(GATEWAY)),
            ("test -e /etc/sysctl.d/99-labtui-kubernetes.conf -o -e /etc/sysctl.d/99-kubernetes.conf && echo ok", "ok"),
        ]:
            code, out, err = machines.ssh_run(cp, cmd)
            assert want in out, f"{cmd}: {code} {out} {err}"
        code, out, _ = machines.ssh_run(cp, "cloud-init status --long; sudo grep -E 'WARNING|ERROR|Traceback' "
                                            "/var/log/cloud-init.log | tail -n 15")
        print("cloud-init on cp:\n" + out, file=sys.stderr)
        assert "status: running" not in out  # the build waited for it
    finally:
        cp.close()

    # Calico (SIMULATED kubectl applies the manifests the control plane downloaded through the proxy; the
    # API server is kmock) and the doctor: every stage done, the lab healthy
    rest = _labtui(env, "up", "real", "--from", "calico", "--yes", "--json", timeout=900)
    assert rest.returncode == 0, rest.stdout[-5000:] + rest.stderr[-5000:]
    report = json.loads(rest.stdout)
    assert [st["stage"] for st in report["stages"]] == ["calico", "doctor"], report
    assert all(s["state"] in ("done", "skipped") for st in report["stages"] for s in st["steps"]), rest.stdout[-4000:]
    state = json.loads((machines.SHARED_DIR / "cluster.json").read_text())
    assert sorted(state["nodes"]) == ["cp", "w1", "w2"], state["nodes"]
    sessions = json.loads(_labtui(env, "sessions", "--json").stdout)
    health = next(s for s in sessions if s["name"] == "real")["health"]
    assert "healthy" in health, health

    # a second run: nothing applied, nothing recorded
    before = subprocess.run([sys.executable, "-m", "labtui", "revert", "real"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120).stdout
    again = _labtui(env, "up", "real", "--yes", "--json", timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = subprocess.run([sys.executable, "-m", "labtui", "revert", "real"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120).stdout
    assert after == before

    # no bootstrap token in what labtui keeps, nor in any node's sudo log (the join reads it from a 0600 file)
    tokens = list(json.loads((machines.SHARED_DIR / "cluster.json").read_text())["tokens"])
    assert tokens and all(TOKEN.fullmatch(t) for t in tokens)
    text = ""
    for p in home.rglob("*"):
        if p.is_file() and p.name != "admin.conf":
            text += p.read_bytes().decode("utf-8", errors="replace")
    assert not [t for t in tokens if t in text]
    assert not TOKEN.search((home / "labtui.log").read_text())
    audit = {}
    for n in NODES:  # the host sits on the lab's bridge: the fixed IPs answer directly
        c = machines.wait_ssh(n["address"], ssh_key, timeout=30)
        try:
            _, journal, _ = machines.ssh_run(c, "sudo journalctl --no-pager -q _COMM=sudo")
            _, audit[n["name"]], _ = machines.ssh_run(
                c, "sudo dpkg --audit; dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' "
                   "containerd.io kubeadm kubelet kubectl cri-tools")
        finally:
            c.close()
        assert "COMMAND=" in journal  # sudo's log is there to be read
        assert not [t for t in tokens if t in journal], f"a bootstrap token reached {n['name']}'s sudo log"
        lines = [ln.split() for ln in audit[n["name"]].splitlines() if ln.strip()]
        assert all(ln[0] in ("ii", "hi") for ln in lines) and len(lines) == 5, f"{n['name']}: {audit[n['name']]}"

    api.stop()

    # teardown leaves nothing
    ids = [s.id for s in conn.compute.servers()]
    down = _labtui(env, "teardown", "real", "--yes", timeout=600)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert list(conn.compute.servers()) == []
    assert [n for n in conn.network.networks() if n.name.startswith("labtui-real")] == []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(machines.machine_leftovers(i) for i in ids):
        time.sleep(1)
    assert [machines.machine_leftovers(i) for i in ids] == [[] for _ in ids]


def _kill_when(proc: subprocess.Popen, log: Path, marker: str, timeout: float = 600) -> str:
    """SIGKILL `proc` as soon as labtui's log holds `marker`; returns the log line that matched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"labtui ended (exit {proc.returncode}) before {marker!r}"
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if marker in line:
                    proc.kill()
                    proc.wait(timeout=30)
                    return line
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"{marker!r} never appeared in {log}")
