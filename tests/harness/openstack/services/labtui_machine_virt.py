"""nova.virt.labtui_machine: real Debian machines (systemd-nspawn) for the test cloud's Nova.

The compute driver is `labtui_machine.LabtuiMachineDriver` (the harness copies this file into
nova/virt as labtui_machine.py), a subclass of labtui_fake.LabtuiFakeDriver (left unchanged, so a
checkout without this file installs the same fake driver and does not restart nova-compute).
Only a server whose image carries the property `labtui_rootfs` (a directory holding a Debian root
filesystem, see tests/harness/machines.py) boots a real machine; every other server goes straight
to the fake driver, exactly as before.

A real machine, per server (state under <LABTUI_OPENSTACK_STATE>/machines/<server uuid>/):
- root: overlayfs, `upper/` + `work/` per server over the shared image, mounted on `merged/`;
- cloud-init NoCloud seed in merged/var/lib/cloud/seed/nocloud/: meta-data (instance-id = server
  uuid, local-hostname = server name, public-keys = the keypair), user-data (the server's
  user_data byte for byte, `#cloud-config` when it has none), network-config v2 (MAC match,
  fixed IP/prefix, `to: 0.0.0.0/0` via the gateway, the subnet's nameservers);
- network: named netns `labtui-machine-<uuid>`; one veth per port: the machine end is `eth<i>`
  with the port's MAC, the host end (`lmv<uuid8><i>`) joins the host bridge of the port's Neutron
  network (`lmbr<network id 10>`), made on first use with the subnet's gateway IP (the host is
  the machines' router and reaches them directly) and removed with its last machine;
- boot: `systemd-nspawn --boot` in its own session (it outlives a nova-compute restart), console
  (stdout+stderr) appended to `console.log`, which get_console_output returns (last 100 KiB);
- the host directory <home>/machines/shared is bound read-write at /run/labtui-simulation.

Floating IPs (Neutron here has no L3 agent): a reconciler thread in nova-compute, alive only while
real machines exist, lists Neutron's floating IPs every 2 s and keeps the nftables table
`ip labtui_fip` equal to them: for each floating IP bound to a real machine's port, DNAT
floating -> fixed in `output` (the host's own connections: tests, labtui) and `prerouting`, and
masquerade of DNATed traffic leaving on a machine bridge; plus a /32 route of the floating IP to
the machine's bridge (`proto 177`), so its traffic never takes the host's real default route. The table is deleted when the last
machine goes. The host's ip_forward is never touched, so machine -> floating IP (hairpin) is not
routed; machines reach each other on their fixed IPs, as they would on a real tenant network.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from nova import exception
from nova.compute import power_state
from nova.virt import hardware
from nova.virt.labtui_fake import LabtuiFakeDriver
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

ROOTFS_PROPERTY = "labtui_rootfs"
STATE = Path(os.environ.get("LABTUI_OPENSTACK_STATE", "/var/lib/labtui-test/openstack"))
MACHINES = STATE / "machines"
SHARED_DIR = STATE.parent / "machines" / "shared"
SHARED_MOUNT = "/run/labtui-simulation"
MAX_CONSOLE_BYTES = 100 * 1024  # what nova's libvirt driver returns at most
FIP_TABLE = "labtui_fip"
FIP_INTERVAL = 2.0
FIP_ROUTE_PROTO = "177"  # marks the harness's /32 routes of floating IPs
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_net_lock = threading.Lock()  # bridges are shared between machines of one network
_procs: dict[str, subprocess.Popen] = {}  # uuid -> nspawn started by this process (reaped here)


class MachineError(RuntimeError):
    pass


def _run(cmd: list[str], check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout,
                         stdin=None if input is not None else subprocess.DEVNULL,
                         env={**os.environ, "PATH": PATH + ":" + os.environ.get("PATH", "")})
    if check and res.returncode != 0:
        raise MachineError(f"{' '.join(cmd)}: exit {res.returncode}: {(res.stderr or res.stdout).strip()}")
    return res


def rootfs_of(instance) -> str | None:
    """The rootfs directory named by the server's image (nova keeps image properties in
    system_metadata as image_<property>), or None for a fake server."""
    try:
        value = (instance.system_metadata or {}).get("image_" + ROOTFS_PROPERTY)
    except Exception:  # an instance without system_metadata loaded is a fake one
        return None
    return value or None


def machine_dir(uuid: str) -> Path:
    return MACHINES / uuid


def is_machine(uuid: str) -> bool:
    return (machine_dir(uuid) / "machine.json").exists()


def machine_uuids() -> list[str]:
    if not MACHINES.is_dir():
        return []
    return [d.name for d in MACHINES.iterdir() if (d / "machine.json").exists()]


def _record(uuid: str) -> dict:
    return json.loads((machine_dir(uuid) / "machine.json").read_text())


def netns_name(uuid: str) -> str:
    return f"labtui-machine-{uuid}"


def bridge_name(network_id: str) -> str:
    return "lmbr" + network_id.replace("-", "")[:10]


def host_veth(uuid: str, index: int) -> str:
    return f"lmv{uuid.replace('-', '')[:8]}{index}"


def _hostname(instance) -> str:
    name = re.sub(r"[^A-Za-z0-9-]+", "-", instance.display_name or "").strip("-")[:63]
    return name or (getattr(instance, "hostname", None) or "machine")


# --------------------------------------------------------------------------- spawn


def spawn_machine(instance, network_info, rootfs: str) -> None:
    uuid = instance.uuid
    root = Path(rootfs)
    if not (root / "sbin" / "init").exists() and not (root / "lib" / "systemd" / "systemd").exists():
        raise MachineError(f"image property {ROOTFS_PROPERTY}={rootfs} is not a root filesystem "
                           "(build it with `python -m tests.harness.machines setup`)")
    d = machine_dir(uuid)
    for sub in ("upper", "work", "merged"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    vifs = _vifs(uuid, network_info)
    hostname = _hostname(instance)
    record = {"uuid": uuid, "name": instance.display_name, "hostname": hostname, "rootfs": str(root),
              "netns": netns_name(uuid), "vifs": vifs}
    _mount(d, root)
    _write_seed(d / "merged", instance, hostname, vifs)
    (d / "machine.json").write_text(json.dumps(record, indent=2))
    _setup_network(record)
    start_machine(uuid)


def _vifs(uuid: str, network_info) -> list[dict]:
    vifs = []
    for i, vif in enumerate(network_info or []):
        v4 = None
        for subnet in vif["network"]["subnets"]:
            if subnet["cidr"] and ipaddress.ip_network(subnet["cidr"]).version == 4 and subnet["ips"]:
                v4 = subnet
                break
        entry = {"port_id": vif["id"], "mac": vif["address"], "network_id": vif["network"]["id"],
                 "bridge": bridge_name(vif["network"]["id"]), "host_if": host_veth(uuid, i), "if": f"eth{i}"}
        if v4 is not None:
            net = ipaddress.ip_network(v4["cidr"])
            gw = (v4.get("gateway") or {}).get("address")
            entry.update(cidr=str(net), ip=v4["ips"][0]["address"], prefix=net.prefixlen, gateway=gw,
                         dns=[d["address"] for d in v4.get("dns") or []])
        vifs.append(entry)
    return vifs


def _mount(d: Path, root: Path) -> None:
    merged = d / "merged"
    if os.path.ismount(merged):
        return
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={root},upperdir={d / 'upper'},workdir={d / 'work'}", str(merged)])


def _write_seed(merged: Path, instance, hostname: str, vifs: list[dict]) -> None:
    seed = merged / "var" / "lib" / "cloud" / "seed" / "nocloud"
    seed.mkdir(parents=True, exist_ok=True)
    meta = {"instance-id": instance.uuid, "local-hostname": hostname}
    if instance.key_data:
        meta["public-keys"] = [instance.key_data.strip()]
    (seed / "meta-data").write_text(json.dumps(meta, indent=2) + "\n")  # JSON is YAML
    user_data = base64.b64decode(instance.user_data) if instance.user_data else b"#cloud-config\n"
    (seed / "user-data").write_bytes(user_data)
    ethernets = {}
    for v in vifs:
        eth: dict = {"match": {"macaddress": v["mac"]}}
        if v.get("ip"):
            eth["addresses"] = [f"{v['ip']}/{v['prefix']}"]
            if v.get("gateway") and v is vifs[0]:
                eth["routes"] = [{"to": "0.0.0.0/0", "via": v["gateway"]}]  # cloud-init 22.4 refuses `default`
            if v.get("dns"):
                eth["nameservers"] = {"addresses": v["dns"]}
        ethernets[v["if"]] = eth
    (seed / "network-config").write_text(json.dumps({"version": 2, "ethernets": ethernets}, indent=2) + "\n")


def _ensure_bridge(v: dict) -> None:
    br = v["bridge"]
    if not Path(f"/sys/class/net/{br}").exists():
        if v.get("gateway"):
            _drop_stale_bridges_with(v["gateway"], br)
        _run(["ip", "link", "add", br, "type", "bridge"])
    if v.get("gateway"):
        addr = f"{v['gateway']}/{v['prefix']}"
        have = _run(["ip", "-o", "-4", "addr", "show", "dev", br]).stdout
        if f" {addr} " not in have:
            _run(["ip", "addr", "add", addr, "dev", br])
    _run(["ip", "link", "set", br, "up"])


def _drop_stale_bridges_with(gateway: str, keep: str) -> None:
    """A machine bridge of an earlier (deleted) network with the same gateway and no ports left is
    removed; one that still has machines is a conflict."""
    out = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    for line in out.splitlines():
        parts = line.split()
        dev, addr = parts[1], parts[3].split("/")[0]
        if addr != gateway or dev == keep:
            continue
        if dev.startswith("lmbr") and not os.listdir(f"/sys/class/net/{dev}/brif"):
            _run(["ip", "link", "del", dev], check=False)
        else:
            raise MachineError(f"gateway {gateway} is already an address of {dev} on the host: "
                               "real machines' subnets must not overlap each other or the host's")


def _setup_network(record: dict) -> None:
    ns = record["netns"]
    with _net_lock:
        if not Path(f"/run/netns/{ns}").exists():
            _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for v in record["vifs"]:
            _ensure_bridge(v)
            host_if = v["host_if"]
            if not Path(f"/sys/class/net/{host_if}").exists():
                peer = "lmc" + host_if[3:]
                _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer])
                _run(["ip", "link", "set", peer, "netns", ns])
                _run(["ip", "-n", ns, "link", "set", peer, "name", v["if"]])
                _run(["ip", "-n", ns, "link", "set", v["if"], "address", v["mac"]])
            _run(["ip", "link", "set", host_if, "master", v["bridge"]])
            _run(["ip", "link", "set", host_if, "up"])


def _teardown_network(record: dict) -> None:
    with _net_lock:
        for v in record.get("vifs", []):
            if Path(f"/sys/class/net/{v['host_if']}").exists():
                _run(["ip", "link", "del", v["host_if"]], check=False)
        ns = record.get("netns")
        if ns and Path(f"/run/netns/{ns}").exists():
            _run(["ip", "netns", "del", ns], check=False)
        for br in {v["bridge"] for v in record.get("vifs", [])}:
            brif = Path(f"/sys/class/net/{br}/brif")
            if brif.exists() and not os.listdir(brif):
                _run(["ip", "link", "del", br], check=False)


# --------------------------------------------------------------------------- power


def _pid(uuid: str) -> int | None:
    try:
        return int((machine_dir(uuid) / "nspawn.pid").read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    _reap()
    try:  # a zombie's cmdline is empty; a recycled pid is not nspawn
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"systemd-nspawn" in fh.read()
    except OSError:
        return False


def running(uuid: str) -> bool:
    return _alive(_pid(uuid))


def start_machine(uuid: str) -> None:
    if running(uuid):
        return
    d = machine_dir(uuid)
    rec = _record(uuid)
    _mount(d, Path(rec["rootfs"]))
    if not Path(f"/run/netns/{rec['netns']}").exists():
        _setup_network(rec)
    SHARED_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": PATH, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
           "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    for var in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(var, None)
    cmd = ["systemd-nspawn", "-D", str(d / "merged"), "--boot", "--register=no", "--keep-unit",
           "--capability=CAP_NET_ADMIN", f"--network-namespace-path=/run/netns/{rec['netns']}",
           f"--machine={rec['hostname']}", f"--bind={SHARED_DIR}:{SHARED_MOUNT}"]
    with open(d / "console.log", "ab") as console:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, cwd=str(d), close_fds=True)
    _procs[uuid] = proc
    (d / "nspawn.pid").write_text(str(proc.pid))
    LOG.info("labtui machine %s (%s) booting: nspawn pid %s", rec["hostname"], uuid, proc.pid)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
    return kids


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap()
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def _reap() -> None:
    for uuid, proc in list(_procs.items()):
        if proc.poll() is not None:
            _procs.pop(uuid, None)


def stop_machine(uuid: str, clean_timeout: float = 0) -> None:
    """Power off: SIGTERM to nspawn first when clean_timeout (systemd shuts down cleanly), then
    SIGKILL to the machine's init (its whole PID namespace dies) and to nspawn's group; anything
    left in the machine's network namespace is killed last."""
    pid = _pid(uuid)
    if _alive(pid):
        if clean_timeout:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, clean_timeout)
        if _alive(pid):
            for child in _children(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            if not _wait_gone(pid, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
    with contextlib.suppress(OSError, ValueError, KeyError):
        ns = _record(uuid)["netns"]
        if Path(f"/run/netns/{ns}").exists():
            for p in _run(["ip", "netns", "pids", ns], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(p), signal.SIGKILL)
    proc = _procs.pop(uuid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    (machine_dir(uuid) / "nspawn.pid").unlink(missing_ok=True)


def destroy_machine(uuid: str) -> None:
    """Power off, remove veth/netns (and the bridge with its last machine), unmount and remove the
    overlay. Idempotent."""
    d = machine_dir(uuid)
    if not d.exists():
        return
    stop_machine(uuid)
    try:
        record = _record(uuid)
    except (OSError, ValueError):
        record = {"netns": netns_name(uuid), "vifs": []}
    _teardown_network(record)
    merged = d / "merged"
    for _ in range(20):
        if not os.path.ismount(merged):
            break
        if _run(["umount", str(merged)], check=False).returncode != 0:
            time.sleep(0.25)
    if os.path.ismount(merged):
        _run(["umount", "-l", str(merged)], check=False)
    if os.path.ismount(merged):
        raise MachineError(f"{merged} is still mounted")
    (d / "machine.json").unlink(missing_ok=True)
    shutil.rmtree(d, ignore_errors=True)
    LOG.info("labtui machine %s destroyed", uuid)


def console_output(uuid: str) -> bytes:
    path = machine_dir(uuid) / "console.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - MAX_CONSOLE_BYTES))
            return fh.read()
    except OSError:
        return b""


# --------------------------------------------------------------------------- floating IPs


class FloatingIPReconciler(threading.Thread):
    def __init__(self):
        super().__init__(name="labtui-fip", daemon=True)
        self._applied: str | None = None
        self._client = None

    def run(self):
        while True:
            try:
                self.sync()
            except Exception as exc:  # never die; a token or Neutron hiccup passes
                self._client = None
                LOG.warning("labtui floating IP sync: %s", exc)
            time.sleep(FIP_INTERVAL)

    def _neutron(self):
        if self._client is None:
            from nova import context as nova_context
            from nova.network import neutron

            self._client = neutron.get_client(nova_context.get_admin_context(), admin=True)
        return self._client

    def sync(self) -> None:
        ports: dict[str, dict] = {}
        for uuid in machine_uuids():
            with contextlib.suppress(OSError, ValueError):
                for v in _record(uuid)["vifs"]:
                    ports[v["port_id"]] = v
        if not ports:
            if self._applied != "":
                _run(["nft", "delete", "table", "ip", FIP_TABLE], check=False)
                self._sync_routes({})
                self._applied = ""
            return
        fips = self._neutron().list_floatingips()["floatingips"]
        mine = [f for f in fips if f.get("port_id") in ports and f.get("fixed_ip_address")]
        pairs = sorted({(f["floating_ip_address"], f["fixed_ip_address"]) for f in mine})
        self._sync_routes({f["floating_ip_address"]: ports[f["port_id"]]["bridge"] for f in mine})
        dnat = "".join(f"    ip daddr {fip} dnat to {fixed}\n" for fip, fixed in pairs)
        text = (f"table ip {FIP_TABLE}\ndelete table ip {FIP_TABLE}\n"
                f"table ip {FIP_TABLE} {{\n"
                f"  chain output {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n"
                f"  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}\n"
                f"  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n"
                f"    oifname \"lmbr*\" ct status dnat masquerade\n  }}\n}}\n")
        if text != self._applied:
            _run(["nft", "-f", "-"], input=text)
            self._applied = text
            LOG.info("labtui floating IPs: %s", ", ".join(f"{a}->{b}" for a, b in pairs) or "none")


    @staticmethod
    def _sync_routes(wanted: dict[str, str]) -> None:
        """A /32 route per floating IP to its machine's bridge (protocol FIP_ROUTE_PROTO marks
        ours): the host never sends a floating IP's traffic to its real default gateway."""
        have = {}
        for line in _run(["ip", "-o", "-4", "route", "show", "proto", FIP_ROUTE_PROTO], check=False).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "dev":
                have[parts[0].split("/")[0]] = parts[2]
        for fip, dev in have.items():
            if wanted.get(fip) != dev:
                _run(["ip", "route", "del", f"{fip}/32", "proto", FIP_ROUTE_PROTO], check=False)
        for fip, dev in wanted.items():
            if have.get(fip) != dev:
                _run(["ip", "route", "replace", f"{fip}/32", "dev", dev, "proto", FIP_ROUTE_PROTO], check=False)


_reconciler: FloatingIPReconciler | None = None


def start_reconciler() -> None:
    global _reconciler
    if _reconciler is None:
        _reconciler = FloatingIPReconciler()
        _reconciler.start()


# --------------------------------------------------------------------------- the driver


class LabtuiMachineDriver(LabtuiFakeDriver):
    """LabtuiFakeDriver, plus real machines for images with the labtui_rootfs property."""

    def init_host(self, host):
        super().init_host(host)
        start_reconciler()

    def spawn(self, context, instance, image_meta, injected_files, admin_password, allocations,
              network_info=None, block_device_info=None, power_on=True, accel_info=None):
        rootfs = rootfs_of(instance)
        super().spawn(context, instance, image_meta, injected_files, admin_password, allocations,
                      network_info=network_info, block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        if rootfs is None:
            return
        try:
            spawn_machine(instance, network_info, rootfs)
        except Exception as exc:
            LOG.exception("labtui machine %s failed to boot", instance.uuid)
            try:
                destroy_machine(instance.uuid)
            finally:
                super().destroy(context, instance, network_info)
            raise exception.InstanceDeployFailure(reason=f"labtui machine: {exc}") from exc
        if not power_on:
            stop_machine(instance.uuid)

    def destroy(self, context, instance, network_info, block_device_info=None, destroy_disks=True,
                destroy_secrets=True):
        if machine_dir(instance.uuid).exists():
            destroy_machine(instance.uuid)
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)

    def power_off(self, instance, timeout=0, retry_interval=0):
        if not is_machine(instance.uuid):
            return super().power_off(instance, timeout=timeout, retry_interval=retry_interval)
        stop_machine(instance.uuid, clean_timeout=timeout)
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.SHUTDOWN

    def power_on(self, context, instance, network_info, block_device_info=None, accel_info=None,
                 share_info=None):
        if not is_machine(instance.uuid):
            return super().power_on(context, instance, network_info, block_device_info=block_device_info,
                                    accel_info=accel_info, share_info=share_info)
        start_machine(instance.uuid)
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING

    def reboot(self, context, instance, network_info, reboot_type, block_device_info=None,
               bad_volumes_callback=None, accel_info=None, share_info=None):
        if not is_machine(instance.uuid):
            return super().reboot(context, instance, network_info, reboot_type,
                                  block_device_info=block_device_info, bad_volumes_callback=bad_volumes_callback,
                                  accel_info=accel_info, share_info=share_info)
        stop_machine(instance.uuid, clean_timeout=30 if reboot_type.lower() == "soft" else 0)
        start_machine(instance.uuid)

    def get_info(self, instance, use_cache=True):
        if not is_machine(instance.uuid):
            return super().get_info(instance, use_cache=use_cache)
        state = power_state.RUNNING if running(instance.uuid) else power_state.SHUTDOWN
        return hardware.InstanceInfo(state=state)

    def get_console_output(self, context, instance):
        if not is_machine(instance.uuid):
            return super().get_console_output(context, instance)
        return console_output(instance.uuid)  # bytes (nova encodes a str as latin-1): last 100 KiB
