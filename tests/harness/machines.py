"""Real Debian machines booted by the test cloud's Nova (needs root; see real-machines recipe).

A server booted from the Glance image `debian-12-labtui-machine` (IMAGE_NAME) is a real Debian 12
system: systemd-nspawn boots it from an overlay over a cached root filesystem, in its own network
namespace on a host bridge per Neutron network that holds the subnet's gateway IP, and cloud-init
(NoCloud) gets the server's user-data, keypair and fixed IP. Every other image stays a fake
server. The driver is tests/harness/openstack/services/labtui_machine_virt.py (its docstring
says how floating IPs are reached: nftables DNAT kept in sync by nova-compute).

This module is the test side:

    python -m tests.harness.machines setup    # image + Glance registration + apt proxy (idempotent)
    python -m tests.harness.machines status
    python -m tests.harness.machines stop-proxy

    ensure_ready(conn)              build/register what is missing, start the apt proxy
    ensure_project(name) -> cloud   a project + member user; project_conn(cloud) connects
    ensure_external_network()       EXT_NET (EXT_CIDR) for floating IPs (DNAT from the host)
    apt_proxy_url(gateway)          "http://<gateway>:3142": apt-cacher-ng on the host, reached at
                                    the subnet's gateway (the host's bridge address)
    cloud_config(...)               a #cloud-config user-data (bytes) for a real machine
    wait_ssh(host, key, timeout)    a connected paramiko SSHClient (user `debian`), polling
    ssh_run(client, cmd)            (exit code, stdout, stderr)
    machine_leftovers(server_id)    what the host still holds for a server (empty when deleted)

Nothing in the image configures apt's proxy: the product sets `Acquire::http::Proxy` from its
plan's sources.http_proxy; a harness test passes it in cloud-init's `apt: {proxy: ...}`.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.harness.openstack import stack as _stack

ROOT = _stack.ROOT  # /var/lib/labtui-test (LABTUI_OPENSTACK_HOME)
IMAGE_NAME = "debian-12-labtui-machine"
ROOTFS_PROPERTY = "labtui_rootfs"  # the driver boots a real machine only for images with it
IMAGE_DIR = ROOT / "images" / "debian-12"
IMAGE_STAMP = ROOT / "images" / "debian-12.stamp"  # written last: a rootfs without it is rebuilt
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
INCLUDE = ["systemd", "systemd-sysv", "openssh-server", "iproute2", "dbus", "cloud-init", "sudo",
           "ca-certificates", "curl", "gpg", "locales", "apt-transport-https"]
IMAGE_PROPERTIES = {"os_distro": "debian", "os_version": "12", "os_admin_user": "debian",
                    ROOTFS_PROPERTY: str(IMAGE_DIR)}
# The network-config cloud-init renders (networkd, the only renderer on a minbase image) needs
# systemd-networkd running, as on Debian's cloud images; Debian ships it disabled.
CUSTOMIZE = ['chroot "$1" systemctl enable systemd-networkd.service',
             # cloud-init's locale module sets LANG=en_US.UTF-8 (its Debian default), which a minbase root has
             # not generated: the module fails, and systemd-in-nspawn then sometimes never sees the failed
             # cloud-config.service's empty cgroup, so the unit (TimeoutSec=0) and cloud-final wait forever.
             # Debian's cloud images ship the locale generated, so the image does too.
             'echo "en_US.UTF-8 UTF-8" > "$1/etc/locale.gen" && chroot "$1" locale-gen']
ADMIN_USER = "debian"

SHARED_DIR = ROOT / "machines" / "shared"  # bound read-write at /run/labtui-simulation in every machine
SHARED_MOUNT = "/run/labtui-simulation"
MACHINES_STATE = _stack.STATE / "machines"  # per server: overlay, console.log, machine.json

FLAVOR_NAME = "labtui.machine"  # 2 vCPU / 2 GiB (accounting only: nspawn has no limits here)
EXT_NET = "labtui-machines-ext"  # an external network for floating IPs of real machines
EXT_CIDR = "198.19.77.0/24"

APT_PROXY_PORT = 3142
ACNG_DIR = ROOT / "apt-cacher-ng"
ACNG = "/usr/sbin/apt-cacher-ng"


def log(msg: str) -> None:
    print(f"[machines-harness] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _lock(name: str):
    (ROOT / "images").mkdir(parents=True, exist_ok=True)
    with open(ROOT / "images" / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the image


def _stamp_text() -> str:
    return " ".join(_mmdebstrap_args()) + "\n"


def _mmdebstrap_args(target: str = "<dir>") -> list[str]:
    return ["mmdebstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
            *[f"--customize-hook={hook}" for hook in CUSTOMIZE], SUITE, target, MIRROR]


def image_ready() -> bool:
    return (IMAGE_STAMP.exists() and IMAGE_STAMP.read_text() == _stamp_text()
            and (IMAGE_DIR / "lib" / "systemd" / "systemd").exists())


def build_image() -> float:
    """mmdebstrap the Debian 12 root filesystem once (about 30 s, 330 MB). Returns seconds spent."""
    started = time.monotonic()
    with _lock("debian-12"):
        if image_ready():
            return 0.0
        tmp = IMAGE_DIR.with_name(IMAGE_DIR.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"building {IMAGE_DIR} with mmdebstrap (about 30 s)")
        res = subprocess.run(_mmdebstrap_args(str(tmp)), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError("mmdebstrap failed:\n" + "\n".join((res.stderr or res.stdout).splitlines()[-20:]))
        IMAGE_STAMP.unlink(missing_ok=True)
        shutil.rmtree(IMAGE_DIR, ignore_errors=True)
        tmp.rename(IMAGE_DIR)
        IMAGE_STAMP.write_text(_stamp_text())
    return time.monotonic() - started


def admin_conn():
    import openstack

    return openstack.connect(load_yaml_config=False, load_envvars=False,
                             auth_url=f"http://{_stack.HOST}:{_stack.PORTS['keystone']}/v3", username="admin",
                             password=_stack.ADMIN_PASSWORD, project_name="admin", user_domain_name="Default",
                             project_domain_name="Default", region_name=_stack.REGION, identity_api_version="3",
                             api_timeout=60)


def ensure_image(conn=None):
    """Register the image in Glance (public, tiny placeholder data; the rootfs is named by a
    property). Idempotent; returns the image."""
    conn = conn or admin_conn()
    image = conn.image.find_image(IMAGE_NAME, ignore_missing=True)
    if image is None:
        image = conn.image.create_image(name=IMAGE_NAME, disk_format="raw", container_format="bare",
                                        visibility="public", data=io.BytesIO(b"\0" * 1024), **IMAGE_PROPERTIES)
    else:
        props = {**(image.properties or {})}
        wrong = {k: v for k, v in IMAGE_PROPERTIES.items() if props.get(k, getattr(image, k, None)) != v}
        if wrong or image.visibility != "public":
            image = conn.image.update_image(image, visibility="public", **IMAGE_PROPERTIES)
    return image


def ensure_flavor(conn=None):
    conn = conn or admin_conn()
    flavor = conn.compute.find_flavor(FLAVOR_NAME, ignore_missing=True)
    return flavor or conn.compute.create_flavor(name=FLAVOR_NAME, vcpus=2, ram=2048, disk=5)


def ensure_external_network(conn=None):
    """The shared external network real machines' floating IPs come from (EXT_NET, EXT_CIDR)."""
    conn = conn or admin_conn()
    net = conn.network.find_network(EXT_NET, ignore_missing=True)
    if net is None:
        net = conn.network.create_network(name=EXT_NET, is_router_external=True, is_shared=False)
    if not list(conn.network.subnets(network_id=net.id)):
        conn.network.create_subnet(network_id=net.id, name=EXT_NET + "-subnet", cidr=EXT_CIDR, ip_version=4,
                                   enable_dhcp=False)
    return net


def ensure_project(project: str) -> dict:
    """A project with a member user of the same name (password `<project>-pw`); returns its
    clouds.yaml entry (a dict: put it under clouds.<name> for labtui, or pass to project_conn)."""
    adm = admin_conn()
    idn = adm.identity
    dom = idn.find_domain("Default")
    password = f"{project}-pw"
    proj = idn.find_project(project, domain_id=dom.id) or idn.create_project(name=project, domain_id=dom.id)
    user = idn.find_user(project, domain_id=dom.id) or idn.create_user(
        name=project, password=password, domain_id=dom.id, default_project_id=proj.id)
    idn.assign_project_role_to_user(proj, user, idn.find_role("member"))
    return {"auth": {"auth_url": f"http://{_stack.HOST}:{_stack.PORTS['keystone']}/v3", "username": project,
                     "password": password, "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": _stack.REGION, "identity_api_version": 3, "interface": "public"}


def project_conn(cloud: dict):
    import openstack

    return openstack.connect(load_yaml_config=False, load_envvars=False, api_timeout=60,
                             region_name=cloud["region_name"], identity_api_version="3", **cloud["auth"])


# --------------------------------------------------------------------------- apt proxy


def apt_proxy_url(gateway: str) -> str:
    """The apt proxy as a machine reaches it: the host's bridge address is the subnet's gateway."""
    return f"http://{gateway}:{APT_PROXY_PORT}"


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _acng_pid() -> int | None:
    try:
        pid = int((ACNG_DIR / "acng.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return pid if b"apt-cacher-ng" in fh.read() else None
    except (OSError, ValueError):
        return None


def ensure_apt_cacher() -> None:
    """apt-cacher-ng on 0.0.0.0:3142, cache under ROOT/apt-cacher-ng (stock Remap- lines dropped:
    they send deb.debian.org to mirror lists that do not resolve here). Idempotent."""
    with _lock("apt-cacher-ng"):
        if _acng_pid() and _port_open(APT_PROXY_PORT):
            return
        if _port_open(APT_PROXY_PORT):
            raise RuntimeError(f"port {APT_PROXY_PORT} is used by a process this harness did not start "
                               "(Debian's apt-cacher-ng service? stop it: /etc/init.d/apt-cacher-ng stop)")
        conf = ACNG_DIR / "conf"
        for d in (conf, ACNG_DIR / "cache", ACNG_DIR / "log", ACNG_DIR / "run"):
            d.mkdir(parents=True, exist_ok=True)
        stock = Path("/etc/apt-cacher-ng")
        lines = [ln for ln in (stock / "acng.conf").read_text().splitlines() if not ln.startswith("Remap-")]
        (conf / "acng.conf").write_text("\n".join(lines) + "\n")
        shutil.copyfile(stock / "security.conf", conf / "security.conf")
        logf = open(ACNG_DIR / "log" / "foreground.log", "ab")
        proc = subprocess.Popen([ACNG, "-c", str(conf), "ForeGround=1", "BindAddress=0.0.0.0",
                                 f"Port={APT_PROXY_PORT}", f"CacheDir={ACNG_DIR / 'cache'}",
                                 f"LogDir={ACNG_DIR / 'log'}", f"SocketPath={ACNG_DIR / 'run' / 'socket'}",
                                 f"PidFile={ACNG_DIR / 'run' / 'pid'}"],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(ACNG_DIR))
        logf.close()
        (ACNG_DIR / "acng.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + 20
        while not _port_open(APT_PROXY_PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"apt-cacher-ng did not start; see {ACNG_DIR / 'log'}")
            time.sleep(0.2)


def stop_apt_cacher() -> bool:
    pid = _acng_pid()
    if not pid:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, 15)
    for _ in range(50):
        if not _acng_pid():
            break
        time.sleep(0.1)
    (ACNG_DIR / "acng.pid").unlink(missing_ok=True)
    return True


def ensure_ready(conn=None) -> None:
    """Everything a real-machine test needs besides the OpenStack backend itself."""
    build_image()
    conn = conn or admin_conn()
    ensure_image(conn)
    ensure_flavor(conn)
    SHARED_DIR.mkdir(parents=True, exist_ok=True)
    ensure_apt_cacher()


# --------------------------------------------------------------------------- in a test


def cloud_config(*, apt_proxy: str | None = None, write_files: list[dict] | None = None,
                 runcmd: list | None = None, extra: dict | None = None) -> bytes:
    """A #cloud-config for a real machine. `locale: C.UTF-8` and `manage_etc_hosts: true` keep
    cloud-init quiet on the minbase image (the recipe's findings); nothing else is added."""
    import yaml

    data: dict = {"locale": "C.UTF-8", "manage_etc_hosts": True}
    if apt_proxy:
        data["apt"] = {"proxy": apt_proxy}
    if write_files:
        data["write_files"] = write_files
    if runcmd:
        data["runcmd"] = runcmd
    data.update(extra or {})
    return ("#cloud-config\n" + yaml.safe_dump(data, sort_keys=False)).encode()


def wait_ssh(host: str, key: str | os.PathLike, timeout: float = 120, user: str = ADMIN_USER, port: int = 22):
    """Poll until `user@host` accepts the private key `key`; returns a connected paramiko
    SSHClient (close it). Raises TimeoutError with the last error."""
    import paramiko

    pkey = _load_key(Path(key))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(host, port=port, username=user, pkey=pkey, timeout=5, banner_timeout=10,
                           auth_timeout=10, allow_agent=False, look_for_keys=False)
            return client
        except Exception as exc:  # refused, reset, auth (key not installed yet): retry
            last = exc
            client.close()
        time.sleep(1)
    raise TimeoutError(f"ssh {user}@{host}:{port} did not answer in {timeout:.0f}s: {last!r}")


def _load_key(path: Path):
    import paramiko

    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        with contextlib.suppress(paramiko.SSHException):
            return cls.from_private_key_file(str(path))
    raise ValueError(f"{path}: not an ed25519/ecdsa/rsa private key")


def ssh_run(client, command: str, timeout: float = 300) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return stdout.channel.recv_exit_status(), out, err


def machine_leftovers(server_id: str) -> list[str]:
    """What the host still holds for a server: netns, veths, state dir, mounts (empty = clean)."""
    left = []
    ns = Path(f"/run/netns/labtui-machine-{server_id}")
    if ns.exists():
        left.append(f"netns {ns.name}")
    prefix = "lmv" + server_id.replace("-", "")[:8]
    left += [f"veth {n}" for n in os.listdir("/sys/class/net") if n.startswith(prefix)]
    if (MACHINES_STATE / server_id).exists():
        left.append(f"dir {MACHINES_STATE / server_id}")
    with open("/proc/mounts") as fh:
        left += [f"mount {ln.split()[1]}" for ln in fh if server_id in ln]
    return left


# --------------------------------------------------------------------------- command line


def status() -> dict:
    return {"image_dir": str(IMAGE_DIR), "image_ready": image_ready(), "apt_cacher_pid": _acng_pid(),
            "apt_proxy_port_open": _port_open(APT_PROXY_PORT), "shared_dir": str(SHARED_DIR),
            "machines": sorted(p.name for p in MACHINES_STATE.iterdir()) if MACHINES_STATE.is_dir() else []}


def main(argv: list[str] | None = None) -> int:
    import json

    args = argv if argv is not None else sys.argv[1:]
    cmd = args[0] if args else "status"
    if cmd == "setup":
        t = build_image()
        log(f"image {IMAGE_DIR} ready ({t:.0f}s)")
        ensure_ready()
        log(f"Glance image {IMAGE_NAME} registered; apt-cacher-ng on :{APT_PROXY_PORT}")
    elif cmd == "status":
        print(json.dumps(status(), indent=2))
    elif cmd == "stop-proxy":
        print("stopped" if stop_apt_cacher() else "not running")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
