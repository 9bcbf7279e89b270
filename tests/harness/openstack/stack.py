"""Install, start, stop and inspect the real OpenStack test backend (stdlib only).

Real Keystone, Glance, Placement, Neutron and Nova (fake virt driver) from PyPI, on MariaDB and
RabbitMQ from Debian, all bound to 127.0.0.1. See the package docstring for the public API.

Layout on disk (override the root with LABTUI_OPENSTACK_HOME; never inside the repository):

    /var/lib/labtui-test/openstack-venv/   the services' own virtualenv (pinned by constraints.txt)
    /var/lib/labtui-test/openstack/        state: etc/, logs/, run/*.pid, mysql/, rabbitmq/, ...
    /var/lib/labtui-test/openstack/clouds.yaml   written on every start (0600)

Command line (from the repository root, any Python 3.11):

    python3 -m tests.harness.openstack install   # the venv only (idempotent, stamped)
    python3 -m tests.harness.openstack start     # install + start everything (idempotent)
    python3 -m tests.harness.openstack status
    python3 -m tests.harness.openstack stop      # stops what the PID files name
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVICE_FILES = HERE / "services"
CONSTRAINTS = HERE / "constraints.txt"

ROOT = Path(os.environ.get("LABTUI_OPENSTACK_HOME", "/var/lib/labtui-test"))
VENV = ROOT / "openstack-venv"
STATE = ROOT / "openstack"
VPY = VENV / "bin" / "python"

# The services and the versions that were proven together (see constraints.txt).
REQUIREMENTS = [
    "keystone", "glance", "openstack-placement", "neutron", "nova",
    "gunicorn", "PyMySQL", "openstacksdk", "python-openstackclient",
]

HOST = "127.0.0.1"
# LABTUI_OPENSTACK_PORT_OFFSET runs a second, independent stack beside the first (with its own
# LABTUI_OPENSTACK_HOME), e.g. to time an install from scratch without stopping the shared one.
PORT_OFFSET = int(os.environ.get("LABTUI_OPENSTACK_PORT_OFFSET", "0"))
PORTS = {name: port + PORT_OFFSET for name, port in {
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "neutron": 9696,
    "nova-api": 8774,
    "mysql": 13306,  # not 3306: a Debian mariadb service may own that one
    "rabbitmq": 5673,  # not 5672, same reason
    "rabbitmq-dist": 25673,
}.items()}
REGION = "RegionOne"
NO_NETWORK_REGION = "RegionNoNet"  # a region whose catalog has identity only (no Neutron)

# Test credentials of a throw-away local cloud: not secrets, but clouds.yaml is still 0600.
ADMIN_PASSWORD = "labtui-admin-pw"
MEMBER_USER = "labtui-member"
MEMBER_PASSWORD = "labtui-member-pw"
MEMBER_PROJECT = "lab"
SERVICE_PASSWORD = "labtui-service-pw"
DB_USER = "labtui"
DB_PASSWORD = "labtui-db-pw"
DATABASES = ["keystone", "glance", "placement", "neutron", "nova_api", "nova", "nova_cell0"]

IMAGE_NAME = "labtui-image"
# nova-compute's driver: the fake driver, plus real machines for images with labtui_rootfs
# (services/labtui_machine_virt.py; other images stay fake)
COMPUTE_DRIVER = "labtui_machine.LabtuiMachineDriver"
FLAVOR_NAME = "labtui.tiny"

# clouds.yaml entries written for the tests
CLOUD_ADMIN = "labtui-admin"
CLOUD_MEMBER = "labtui-member"
CLOUD_BADPASS = "labtui-badpass"
CLOUD_NONET = "labtui-nonet"

WSGI_SERVICES = {
    # name: (port, wsgi module, program name)
    "keystone": (PORTS["keystone"], "keystone.wsgi.api", "keystone"),
    "glance": (PORTS["glance"], "glance.wsgi.api", "glance-api"),
    "placement": (PORTS["placement"], "placement.wsgi.api", "placement-api"),
    "neutron": (PORTS["neutron"], "neutron.wsgi.api", "neutron-api"),
    "nova-api": (PORTS["nova-api"], "nova.wsgi.osapi_compute", "nova-api-os-compute"),
}
NOVA_DAEMONS = ["nova-conductor", "nova-scheduler", "nova-compute"]
ALL_PROCESSES = ["mysql", "rabbitmq", *WSGI_SERVICES, *NOVA_DAEMONS]


class StackError(RuntimeError):
    """The backend could not be installed or started; the message names the log to read."""


@dataclass
class Stack:
    """What a test needs to reach the running backend."""

    clouds_yaml: Path
    admin_cloud: str = CLOUD_ADMIN
    member_cloud: str = CLOUD_MEMBER
    badpass_cloud: str = CLOUD_BADPASS
    nonet_cloud: str = CLOUD_NONET
    auth_url: str = f"http://{HOST}:{PORTS['keystone']}/v3"
    image: str = IMAGE_NAME
    flavor: str = FLAVOR_NAME
    member_project: str = MEMBER_PROJECT
    state_dir: Path = STATE
    timings: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment that points openstacksdk (and labtui) at this stack's clouds.yaml."""
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}


# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(f"[openstack-harness] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], *, env: dict | None = None, logname: str | None = None, timeout: float = 600,
         check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    res = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout, input=input,
                         stdin=None if input is not None else subprocess.DEVNULL)
    if logname:
        with open(STATE / "logs" / f"{logname}.log", "a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-15:]
        raise StackError(f"{' '.join(cmd[:4])} failed (exit {res.returncode}):\n" + "\n".join(tail))
    return res


def _port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _http_up(port: int, path: str = "/") -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, urllib.error.URLError):
        return False


def _amqp_up(port: int) -> bool:
    """RabbitMQ answers the AMQP 0-9-1 protocol header with a Connection.Start frame."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.settimeout(3)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"
    except OSError:
        return False


def _wait(what: str, probe, timeout: float, logname: str | None = None, pidname: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        if pidname and not _alive(pidname):
            break
        time.sleep(0.3)
    hint = f"; see {STATE / 'logs' / (logname + '.log')}" if logname else ""
    tail = ""
    if logname and (STATE / "logs" / f"{logname}.log").exists():
        tail = "\n" + "\n".join((STATE / "logs" / f"{logname}.log").read_text(errors="replace").splitlines()[-20:])
    state = "exited" if pidname and not _alive(pidname) else f"not ready after {timeout:.0f}s"
    raise StackError(f"{what} {state}{hint}{tail}")


def _pidfile(name: str) -> Path:
    return STATE / "run" / f"{name}.pid"


def _read_pid(name: str) -> int | None:
    try:
        return int(_pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(name: str) -> bool:
    pid = _read_pid(name)
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a recycled PID is not ours: ours run in the state directory (setproctitle clobbers environ)
        cwd = os.readlink(f"/proc/{pid}/cwd")
        return cwd == str(STATE) or cwd.startswith(str(STATE) + "/")
    except OSError:
        return False


def _spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    logf = open(STATE / "logs" / f"{name}.log", "ab")
    full_env = {**os.environ, **(env or {}), "LABTUI_OPENSTACK_STATE": str(STATE)}
    for var in ("PYTHONPATH", "VIRTUAL_ENV"):  # the services must see only their own venv
        full_env.pop(var, None)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            env=full_env, start_new_session=True, cwd=str(STATE))
    logf.close()
    _pidfile(name).write_text(str(proc.pid))
    return proc.pid


def _stop(name: str, timeout: float = 15) -> bool:
    pid = _read_pid(name)
    if not pid or not _alive(name):
        _pidfile(name).unlink(missing_ok=True)
        return False
    # Each service was started in its own session, so its process group id is its recorded PID.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        else:
            continue
        break
    _pidfile(name).unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def _lock():
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _db_url(db: str) -> str:
    return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mysql']}/{db}?charset=utf8"


# --------------------------------------------------------------------------- install


def _site_packages() -> Path:
    return next((VENV / "lib").glob("python3*/site-packages"))


def _install_stamp() -> str:
    h = hashlib.sha256()
    h.update(CONSTRAINTS.read_bytes())
    h.update(" ".join(REQUIREMENTS).encode())
    h.update(sys.version.split()[0].encode())
    return h.hexdigest()


def install_needed() -> bool:
    stamp = VENV / ".labtui-stamp"
    return not (stamp.exists() and stamp.read_text() == _install_stamp() and VPY.exists())


def install() -> float:
    """Create the services' venv (pinned) once; re-running is a stamp check. Returns seconds spent."""
    started = time.monotonic()
    if install_needed():
        running_now = [n for n in ALL_PROCESSES if n not in ("mysql", "rabbitmq") and _alive(n)]
        if running_now:  # they run from the venv about to be replaced
            log(f"stopping {', '.join(running_now)} before reinstalling their venv")
            for name in running_now:
                _stop(name, timeout=5)
            _marker("ready").unlink(missing_ok=True)
        ROOT.mkdir(parents=True, exist_ok=True)
        if VENV.exists():
            shutil.rmtree(VENV)
        log(f"installing OpenStack services into {VENV} (about a minute)")
        _run([_base_python(), "-m", "venv", str(VENV)])
        _run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
              "-c", str(CONSTRAINTS), *REQUIREMENTS], timeout=1800)
        (VENV / ".labtui-stamp").write_text(_install_stamp())
    _install_plugins()
    return time.monotonic() - started


def _base_python() -> str:
    """The interpreter under the current one (a venv's python makes a venv of its base anyway)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _install_plugins() -> None:
    """Place the virt drivers (the fake one and its real-machine subclass) in nova.virt and register
    the fake ML2 mechanism driver."""
    site = _site_packages()
    changed = _copy_if_changed(SERVICE_FILES / "labtui_fake_virt.py", site / "nova" / "virt" / "labtui_fake.py")
    changed |= _copy_if_changed(SERVICE_FILES / "labtui_machine_virt.py", site / "nova" / "virt" / "labtui_machine.py")
    nova_conf = STATE / "etc" / "nova" / "nova.conf"
    if nova_conf.exists() and f"compute_driver = {COMPUTE_DRIVER}\n" not in nova_conf.read_text():
        write_configs()  # written by an older checkout of the harness: another driver
        changed = True
    if changed and _alive("nova-compute"):  # a running compute still has the old driver loaded
        log("restarting nova-compute: its fake virt driver changed")
        _stop("nova-compute", timeout=10)
        start_nova_daemon("nova-compute")
    _copy_if_changed(SERVICE_FILES / "labtui_fake_mech.py", site / "labtui_fake_mech.py")
    dist = site / "labtui_fake_mech-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    files = {
        "METADATA": "Metadata-Version: 2.1\nName: labtui-fake-mech\nVersion: 1.0\n",
        "entry_points.txt": "[neutron.ml2.mechanism_drivers]\nlabtui_fake = labtui_fake_mech:LabtuiFakeMechanismDriver\n",
        "top_level.txt": "labtui_fake_mech\n",
        "INSTALLER": "labtui-harness\n",
        "RECORD": "",
    }
    for fname, text in files.items():
        p = dist / fname
        if not p.exists() or p.read_text() != text:
            p.write_text(text)


def _copy_if_changed(src: Path, dst: Path) -> bool:
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
        return True
    return False


# --------------------------------------------------------------------------- configuration


def _authtoken(user: str) -> str:
    return f"""
[keystone_authtoken]
www_authenticate_uri = http://{HOST}:{PORTS['keystone']}/
auth_url = http://{HOST}:{PORTS['keystone']}/
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {SERVICE_PASSWORD}
region_name = {REGION}
"""


def _password_section(section: str, user: str) -> str:
    return f"""
[{section}]
auth_url = http://{HOST}:{PORTS['keystone']}/
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {SERVICE_PASSWORD}
region_name = {REGION}
"""


def _transport() -> str:
    return f"rabbit://guest:guest@{HOST}:{PORTS['rabbitmq']}/"


def write_configs() -> None:
    etc = STATE / "etc"
    for d in ("keystone", "glance", "placement", "neutron", "nova"):
        (etc / d).mkdir(parents=True, exist_ok=True)
    for d in ("logs", "run", "keystone/fernet-keys", "keystone/credential-keys", "glance/images",
              "glance/staging", "glance/tasks", "neutron/lock", "nova/instances", "nova/lock", "placement"):
        (STATE / d).mkdir(parents=True, exist_ok=True)
    logs = STATE / "logs"

    (etc / "keystone" / "keystone.conf").write_text(f"""
[DEFAULT]
log_file = {logs}/keystone-app.log
[database]
connection = {_db_url('keystone')}
[token]
provider = fernet
[fernet_tokens]
key_repository = {STATE}/keystone/fernet-keys
[fernet_receipts]
key_repository = {STATE}/keystone/fernet-keys
[credential]
key_repository = {STATE}/keystone/credential-keys
""")

    (etc / "glance" / "glance-api.conf").write_text(f"""
[DEFAULT]
log_file = {logs}/glance-app.log
enabled_backends = fs:file
worker_self_reference_url = http://{HOST}:{PORTS['glance']}
[database]
connection = {_db_url('glance')}
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {STATE}/glance/images
[os_glance_staging_store]
filesystem_store_datadir = {STATE}/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = {STATE}/glance/tasks
[paste_deploy]
flavor = keystone
config_file = {VENV}/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = {STATE}/glance
{_authtoken('glance')}
""")

    (etc / "placement" / "placement.conf").write_text(f"""
[DEFAULT]
log_file = {logs}/placement-app.log
[placement_database]
connection = {_db_url('placement')}
[api]
auth_strategy = keystone
{_authtoken('placement')}
""")

    (etc / "neutron" / "neutron.conf").write_text(f"""
[DEFAULT]
log_file = {logs}/neutron-app.log
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = {_transport()}
dhcp_agent_notification = false
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
api_paste_config = {VENV}/etc/neutron/api-paste.ini
state_path = {STATE}/neutron
[database]
connection = {_db_url('neutron')}
[oslo_concurrency]
lock_path = {STATE}/neutron/lock
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = labtui_fake
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
{_authtoken('neutron')}
{_password_section('nova', 'nova')}
""")

    (etc / "nova" / "nova.conf").write_text(f"""
[DEFAULT]
log_file = {logs}/nova-app.log
transport_url = {_transport()}
compute_driver = {COMPUTE_DRIVER}
host = labtui-compute
my_ip = {HOST}
state_path = {STATE}/nova
instances_path = {STATE}/nova/instances
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {VENV}/etc/nova/api-paste.ini
[api_database]
connection = {_db_url('nova_api')}
[database]
connection = {_db_url('nova')}
[scheduler]
discover_hosts_in_cells_interval = 2
workers = 1
[conductor]
workers = 1
[vnc]
enabled = false
[oslo_concurrency]
lock_path = {STATE}/nova/lock
[glance]
region_name = {REGION}
{_authtoken('nova')}
{_password_section('placement', 'placement')}
{_password_section('neutron', 'neutron')}
""")

    (STATE / "mysql").mkdir(parents=True, exist_ok=True)
    (STATE / "mysql" / "my.cnf").write_text(f"""
[client]
socket = {STATE}/mysql/mysqld.sock
user = root
[mysqld]
datadir = {STATE}/mysql/data
socket = {STATE}/mysql/mysqld.sock
pid-file = {STATE}/mysql/mysqld.pid
port = {PORTS['mysql']}
bind-address = {HOST}
user = root
skip-name-resolve
innodb_buffer_pool_size = 64M
innodb_flush_log_at_trx_commit = 2
max_connections = 500
performance_schema = OFF
log-error = {logs}/mysqld-error.log
""")

    (STATE / "rabbitmq").mkdir(parents=True, exist_ok=True)
    (STATE / "rabbitmq" / "enabled_plugins").write_text("[].\n")


def _service_env(name: str) -> dict[str, str]:
    etc = STATE / "etc"
    return {
        "keystone": {"OS_KEYSTONE_CONFIG_DIR": str(etc / "keystone")},
        "glance": {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")},
        "placement": {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")},
        "neutron": {"OS_NEUTRON_CONFIG_DIR": str(etc / "neutron"), "OS_NEUTRON_CONFIG_FILES": "neutron.conf"},
        "nova-api": {"OS_NOVA_CONFIG_DIR": str(etc / "nova"),
                     "OS_NOVA_CONFIG_FILES": f"{VENV}/etc/nova/api-paste.ini;nova.conf"},
    }.get(name, {})


def _rabbit_env() -> dict[str, str]:
    r = STATE / "rabbitmq"
    return {
        "HOME": str(r),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": f"labtui{PORT_OFFSET or ''}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(PORTS["rabbitmq"]),
        "RABBITMQ_DIST_PORT": str(PORTS["rabbitmq-dist"]),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
        "RABBITMQ_LOG_BASE": str(STATE / "logs"),
        "RABBITMQ_LOGS": str(STATE / "logs" / "rabbitmq-app.log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(r / "rabbit.pid"),
        "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq"),  # none: defaults
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(r / "advanced.config"),
    }


# --------------------------------------------------------------------------- the pieces


def _mysql(sql: str) -> None:
    _run(["mariadb", f"--defaults-file={STATE}/mysql/my.cnf", "-uroot"], input=sql, logname="mysql-setup")


def start_mysql() -> None:
    if _alive("mysql") and _port_open(PORTS["mysql"]):
        return
    own_pid = STATE / "mysql" / "mysqld.pid"
    if _port_open(PORTS["mysql"]) and own_pid.exists():  # ours, started by an earlier run: adopt it
        _pidfile("mysql").write_text(own_pid.read_text().strip())
        if _alive("mysql"):
            return
    if _port_open(PORTS["mysql"]):
        raise StackError(f"port {PORTS['mysql']} is used by a process this harness did not start")
    datadir = STATE / "mysql" / "data"
    if not (datadir / "mysql").exists():
        shutil.rmtree(datadir, ignore_errors=True)
        _run(["mariadb-install-db", f"--defaults-file={STATE}/mysql/my.cnf",
              "--auth-root-authentication-method=socket", "--skip-test-db"], logname="mysql-setup")
    _spawn("mysql", ["mariadbd", f"--defaults-file={STATE}/mysql/my.cnf"])
    _wait("MariaDB", lambda: _port_open(PORTS["mysql"]) and (STATE / "mysql" / "mysqld.sock").exists(), 60,
          "mysqld-error", "mysql")
    stmts = [f"CREATE DATABASE IF NOT EXISTS {db};" for db in DATABASES]
    stmts += [f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';",
              f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'127.0.0.1';", "FLUSH PRIVILEGES;"]
    _mysql("\n".join(stmts))


def start_rabbitmq() -> None:
    if _alive("rabbitmq") and _amqp_up(PORTS["rabbitmq"]):
        return
    (STATE / "rabbitmq" / "advanced.config").write_text("[].\n")
    _spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], _rabbit_env())
    _wait("RabbitMQ", lambda: _amqp_up(PORTS["rabbitmq"]), 90, "rabbitmq", "rabbitmq")


def _manage(tool: str, *args: str, conf: str, logname: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([str(VENV / "bin" / tool), "--config-file", conf, *args], logname=logname, check=check)


def _marker(name: str) -> Path:
    return STATE / "run" / f"{name}.done"


def init_keystone() -> None:
    conf = str(STATE / "etc" / "keystone" / "keystone.conf")
    if _marker("keystone-db").exists():
        return
    _manage("keystone-manage", "db_sync", conf=conf, logname="keystone-setup")
    _manage("keystone-manage", "fernet_setup", "--keystone-user", "root", "--keystone-group", "root",
            conf=conf, logname="keystone-setup")
    _manage("keystone-manage", "credential_setup", "--keystone-user", "root", "--keystone-group", "root",
            conf=conf, logname="keystone-setup")
    url = f"http://{HOST}:{PORTS['keystone']}/v3/"
    _manage("keystone-manage", "bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
            "--bootstrap-region-id", REGION, "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
            "--bootstrap-internal-url", url, conf=conf, logname="keystone-setup")
    _marker("keystone-db").touch()


def init_schemas() -> None:
    """The other services' schemas, in parallel (each once)."""
    etc = STATE / "etc"

    def glance() -> None:
        if not _marker("glance-db").exists():
            _manage("glance-manage", "db_sync", conf=str(etc / "glance" / "glance-api.conf"), logname="glance-setup")
            _marker("glance-db").touch()

    def placement() -> None:
        if not _marker("placement-db").exists():
            _manage("placement-manage", "db", "sync", conf=str(etc / "placement" / "placement.conf"),
                    logname="placement-setup")
            _marker("placement-db").touch()

    def neutron() -> None:
        if not _marker("neutron-db").exists():
            _manage("neutron-db-manage", "upgrade", "heads", conf=str(etc / "neutron" / "neutron.conf"),
                    logname="neutron-setup")
            _marker("neutron-db").touch()

    def nova() -> None:
        if _marker("nova-db").exists():
            return
        conf = str(etc / "nova" / "nova.conf")
        _manage("nova-manage", "api_db", "sync", conf=conf, logname="nova-setup")
        cells = _manage("nova-manage", "cell_v2", "list_cells", conf=conf, logname="nova-setup").stdout
        if "cell0" not in cells:
            _manage("nova-manage", "cell_v2", "map_cell0", "--database_connection", _db_url("nova_cell0"),
                    conf=conf, logname="nova-setup")
        if "cell1" not in cells:
            _manage("nova-manage", "cell_v2", "create_cell", "--name", "cell1", conf=conf, logname="nova-setup")
        _manage("nova-manage", "db", "sync", conf=conf, logname="nova-setup")
        _marker("nova-db").touch()

    with ThreadPoolExecutor(4) as pool:
        for fut in [pool.submit(f) for f in (glance, placement, neutron, nova)]:
            fut.result()


def start_wsgi(name: str) -> None:
    port, module, prog = WSGI_SERVICES[name]
    if _alive(name) and _http_up(port):
        return
    _stop(name)
    if _port_open(port):
        raise StackError(f"port {port} for {name} is already used by a process this harness did not start")
    _spawn(name, [str(VPY), str(SERVICE_FILES / "wsgi_serve.py"), module, prog, HOST, str(port)], _service_env(name))


def wait_wsgi(name: str) -> None:
    port = WSGI_SERVICES[name][0]
    _wait(f"{name} on port {port}", lambda: _http_up(port), 120, name, name)


def start_nova_daemon(name: str) -> None:
    if _alive(name):
        return
    conf = str(STATE / "etc" / "nova" / "nova.conf")
    _spawn(name, [str(VENV / "bin" / name), "--config-file", conf])


def _provision(phase: str, timeout: float = 300) -> dict:
    env = {"LABTUI_OPENSTACK_STATE": str(STATE)}
    res = _run([str(VPY), str(SERVICE_FILES / "provision.py"), phase, json.dumps(_provision_config())],
               env=env, logname=f"provision-{phase}", timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _provision_config() -> dict:
    return {
        "auth_url": f"http://{HOST}:{PORTS['keystone']}/v3",
        "admin_password": ADMIN_PASSWORD, "service_password": SERVICE_PASSWORD,
        "member_user": MEMBER_USER, "member_password": MEMBER_PASSWORD, "member_project": MEMBER_PROJECT,
        "region": REGION, "no_network_region": NO_NETWORK_REGION,
        "endpoints": {
            "image": f"http://{HOST}:{PORTS['glance']}",
            "placement": f"http://{HOST}:{PORTS['placement']}",
            "network": f"http://{HOST}:{PORTS['neutron']}",
            "compute": f"http://{HOST}:{PORTS['nova-api']}/v2.1",
        },
        "image": IMAGE_NAME, "flavor": FLAVOR_NAME,
        "nova_conf": str(STATE / "etc" / "nova" / "nova.conf"),
        "nova_manage": str(VENV / "bin" / "nova-manage"),
        "compute_host": "labtui-compute",
    }


def write_clouds_yaml() -> Path:
    def cloud(user: str, password: str, project: str, region: str = REGION) -> dict:
        return {
            "auth": {"auth_url": f"http://{HOST}:{PORTS['keystone']}/v3", "username": user, "password": password,
                     "project_name": project, "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": region, "identity_api_version": 3, "interface": "public",
        }

    data = {"clouds": {
        CLOUD_ADMIN: cloud("admin", ADMIN_PASSWORD, "admin"),
        CLOUD_MEMBER: cloud(MEMBER_USER, MEMBER_PASSWORD, MEMBER_PROJECT),
        CLOUD_BADPASS: cloud("admin", "not-the-password", "admin"),
        CLOUD_NONET: cloud("admin", ADMIN_PASSWORD, "admin", NO_NETWORK_REGION),
    }}
    path = STATE / "clouds.yaml"
    text = json.dumps(data, indent=2)  # JSON is YAML
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return path


# --------------------------------------------------------------------------- public entry points


def running() -> bool:
    return all(_alive(p) for p in ALL_PROCESSES) and _marker("ready").exists() and all(
        _http_up(port) for port, _, _ in WSGI_SERVICES.values())


def start() -> Stack:
    """Install if needed and start every piece that is not running. Idempotent; returns the Stack."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with _lock():
        timings["install"] = install()
        if running():
            timings["start"] = time.monotonic() - t0 - timings["install"]
            return Stack(clouds_yaml=write_clouds_yaml(), timings=timings)
        _marker("ready").unlink(missing_ok=True)
        write_configs()
        t = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            fm, fr = pool.submit(start_mysql), pool.submit(start_rabbitmq)
            fm.result()
            schemas = pool.submit(init_schemas)
            init_keystone()
            start_wsgi("keystone")
            wait_wsgi("keystone")
            _provision("keystone")
            schemas.result()
            fr.result()
        timings["base"] = time.monotonic() - t
        t = time.monotonic()
        for name in ("glance", "placement", "neutron", "nova-api"):
            start_wsgi(name)
        for name in ("nova-conductor", "nova-scheduler"):
            start_nova_daemon(name)
        for name in ("glance", "placement", "neutron", "nova-api"):
            wait_wsgi(name)
        start_nova_daemon("nova-compute")
        _provision("nova")
        _marker("ready").touch()
        timings["services"] = time.monotonic() - t
        timings["start"] = time.monotonic() - t0 - timings["install"]
        return Stack(clouds_yaml=write_clouds_yaml(), timings=timings)


def stop() -> list[str]:
    """Stop every process named by a PID file of this harness (services first, databases last)."""
    stopped = []
    with _lock():
        _marker("ready").unlink(missing_ok=True)
        services = [n for n in reversed(ALL_PROCESSES) if n not in ("mysql", "rabbitmq")]
        with ThreadPoolExecutor(len(services)) as pool:  # the API services hold no state worth a wait
            for name, done in zip(services, pool.map(lambda n: _stop(n, timeout=5), services)):
                if done:
                    stopped.append(name)
        for name in ("rabbitmq", "mysql"):  # these get time for a clean shutdown
            if _stop(name, timeout=30):
                stopped.append(name)
    return stopped


def status() -> dict[str, object]:
    out: dict[str, object] = {name: ("running" if _alive(name) else "stopped") for name in ALL_PROCESSES}
    out["ready"] = _marker("ready").exists()
    out["venv"] = str(VENV)
    out["state"] = str(STATE)
    return out


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cmd = args[0] if args else "status"
    try:
        if cmd == "install":
            print(f"installed in {install():.1f}s")
        elif cmd == "start":
            stack = start()
            print(json.dumps({"clouds_yaml": str(stack.clouds_yaml), **{k: round(v, 1) for k, v in stack.timings.items()}}))
        elif cmd == "stop":
            print("stopped: " + (", ".join(stop()) or "nothing was running"))
        elif cmd == "status":
            print(json.dumps(status(), indent=2))
        else:
            print(__doc__)
            return 2
    except StackError as exc:
        print(f"openstack harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
