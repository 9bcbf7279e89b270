"""Provisioning four servers on the OpenStack test backend: labtui vs a raw openstacksdk script.

labtui: `labtui provision LAB --yes` (every step through the Runner and the executor: the cloud
offer, quotas and name clashes first, network + subnet + router + interface, the group and its
derived rules, the keypair, ports, servers, the floating IP, waiting for ACTIVE, host keys from
the console), from an empty project to four ACTIVE servers.

raw: the same resources with openstacksdk and no checks, tags set the same way, everything that
does not depend on something else created in parallel (rules, ports, servers), then one poll
loop until the four servers are ACTIVE. Like labtui (a fresh process), it starts from a new
connection: its login and the services' version discovery are inside its time (a connection
warmed by the setup would hide ~1 s that any real script pays).

Both boot REAL Debian 12 machines (the test cloud's Nova boots the image debian-12-labtui-machine
with systemd-nspawn and real cloud-init: tests/harness/machines.py), and both stop when every
server's console shows cloud-init's host key fingerprints (labtui pins them from there; a script
that wants to SSH safely must wait for the same): the time is boot-to-keys, not only ACTIVE.
`--fake` measures the fake servers as before (ACTIVE only; labtui's console wait cut to 1 s).

Runs alternate (empty project before each); medians compared. Target: labtui <= 1.3 x raw.

    .venv/bin/python bench/bench_provision.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "prov-bench"


def setup(tmp: Path):
    import yaml

    from tests.harness.openstack.stack import start
    from tests.provision import conftest as cf

    start()
    adm = cf.admin_conn()
    cf._admin_setup(adm)
    idn = adm.identity
    dom = idn.find_domain("Default")
    proj = idn.find_project(PROJECT, domain_id=dom.id) or idn.create_project(name=PROJECT, domain_id=dom.id)
    user = idn.find_user(PROJECT, domain_id=dom.id) or idn.create_user(name=PROJECT, password=PROJECT + "-pw",
                                                                         domain_id=dom.id, default_project_id=proj.id)
    idn.assign_project_role_to_user(proj, user, idn.find_role("member"))
    clouds = tmp / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"prov": {
        "auth": {"auth_url": cf.AUTH_URL, "username": PROJECT, "password": PROJECT + "-pw", "project_name": PROJECT,
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": "RegionOne", "identity_api_version": 3}}}))
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    conn = cf._connect(username=PROJECT, password=PROJECT + "-pw", project_name=PROJECT)
    if REAL:
        from tests.harness import machines

        machines.ensure_ready(adm)
        if adm.compute.find_flavor(REAL_FLAVOR, ignore_missing=True) is None:
            adm.compute.create_flavor(name=REAL_FLAVOR, vcpus=2, ram=2048, disk=20)
    return conn, key.with_suffix(".pub")


REAL = True
REAL_FLAVOR = "labtui.machine.d20"


def _image_and_flavors():
    from tests.provision import conftest as cf

    if REAL:
        from tests.harness import machines

        return machines.IMAGE_NAME, REAL_FLAVOR, REAL_FLAVOR
    return cf.IMAGE, "prov.cp.d20", "prov.worker.d20"


def run_labtui(tmp: Path, pub: Path, i: int) -> float:
    from labtui import cli
    from labtui.model import Plan
    from labtui.store import Store
    from tests.provision import conftest as cf

    os.environ["LABTUI_HOME"] = str(tmp / f"state{i}")
    store = Store()
    lab = f"bench{i}"
    image, fl_cp, fl_w = _image_and_flavors()
    extra = {"image": image, "flavor_control_plane": fl_cp, "flavor_worker": fl_w}
    if REAL:
        extra["login_user"] = "debian"
    else:
        import labtui.stages.provision.host_keys as prov_keys

        prov_keys.HOST_KEY_WAIT = 1.0  # fake consoles never print keys: do not wait 10 minutes for them
    store.create_session(lab, cloud="prov", wizard="provision",
                         plan=Plan.parse(cf.plan_data(lab, "prov", pub, **extra)).model_dump(mode="json"))
    store.close()
    import labtui.commands.provision as prov_command

    quiet = prov_command.eprint
    prov_command.eprint = lambda s: None
    try:
        t = time.monotonic()
        code = cli.main(["provision", lab, "--yes"])
        took = time.monotonic() - t
    finally:
        prov_command.eprint = quiet
    if code != 0:
        raise SystemExit(f"labtui provision failed (exit {code})")
    return took


def run_raw(pub: Path, i: int, warm=None) -> float:
    """`warm`: a connection made (logged in, services discovered) before the clock starts."""
    from tests.provision import conftest as cf

    lab = f"raw{i}"
    tag = f"labtui-lab:{lab}"
    t = time.monotonic()
    conn = warm
    if conn is None:
        conn = cf._connect(username=PROJECT, password=PROJECT + "-pw", project_name=PROJECT)
        conn.authorize()
    net_ = conn.network
    ext = net_.find_network(cf.EXT_NET)
    image_name, cp_name, w_name = _image_and_flavors()
    image = conn.image.find_image(image_name)
    fl_cp, fl_w = conn.compute.find_flavor(cp_name), conn.compute.find_flavor(w_name)
    net = net_.create_network(name=f"{lab}-net")
    net_.set_tags(net, [tag])
    sub = net_.create_subnet(network_id=net.id, name=f"{lab}-subnet", cidr=cf.NODE_SUBNET, ip_version=4)
    net_.set_tags(sub, [tag])
    router = net_.create_router(name=f"{lab}-router", external_gateway_info={"network_id": ext.id})
    net_.set_tags(router, [tag])
    net_.add_interface_to_router(router, subnet_id=sub.id)
    group = net_.create_security_group(name=f"{lab}-sg")
    net_.set_tags(group, [tag])
    rules = [dict(protocol="4", remote_group_id=group.id), dict(protocol="tcp", port_range_min=179, port_range_max=179,
             remote_group_id=group.id), dict(protocol="tcp", port_range_min=6443, port_range_max=6443,
             remote_group_id=group.id), dict(protocol="tcp", port_range_min=10250, port_range_max=10250,
             remote_group_id=group.id), dict(protocol="tcp", port_range_min=30000, port_range_max=32767,
             remote_group_id=group.id), dict(protocol="tcp", port_range_min=22, port_range_max=22,
             remote_ip_prefix="198.51.100.7/32")]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: net_.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                                ether_type="IPv4", **r), rules))
        conn.compute.create_keypair(name=f"{lab}-key", public_key=pub.read_text().strip())

        def port(n):
            p = net_.create_port(network_id=net.id, name=f"{lab}-{n['name']}", security_group_ids=[group.id],
                                 fixed_ips=[{"ip_address": n["address"]}])
            net_.set_tags(p, [tag])
            return p

        ports = list(pool.map(port, cf.NODES))

        def server(args):
            n, p = args
            return conn.compute.create_server(
                name=f"{lab}-{n['name']}", image_id=image.id, flavor_id=(fl_cp if n["role"] == "control-plane" else fl_w).id,
                networks=[{"port": p.id}], key_name=f"{lab}-key", tags=[tag], user_data="I2Nsb3VkLWNvbmZpZwo=")

        servers = list(pool.map(server, zip(cf.NODES, ports)))
        fip = net_.create_ip(floating_network_id=ext.id, port_id=ports[0].id)
        net_.set_tags(fip, [tag])
    ids = {s.id for s in servers}
    while True:
        states = {s.id: s.status for s in conn.compute.servers(details=True) if s.id in ids}
        if all(v == "ACTIVE" for v in states.values()) and len(states) == len(ids):
            break
        if any(v == "ERROR" for v in states.values()):
            raise SystemExit("raw: a server went to ERROR")
        time.sleep(0.5)
    if REAL:  # then every console until cloud-init printed the host keys, polled together
        waiting = set(ids)
        while waiting:
            for sid in list(waiting):
                out = conn.compute.get_server_console_output(sid).get("output") or ""
                if "-----END SSH HOST KEY FINGERPRINTS-----" in out:
                    waiting.discard(sid)
            time.sleep(0.5)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warm-raw", action="store_true",
                    help="give the raw script the setup's warm connection (its login and discovery not timed)")
    ap.add_argument("--fake", action="store_true", help="fake servers (ACTIVE only), as before the real machines")
    args = ap.parse_args()
    global REAL
    REAL = not args.fake
    from tests.provision.conftest import empty_project

    tmp = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    conn, pub = setup(tmp)
    labtui_t, raw_t = [], []
    for i in range(args.runs):
        empty_project(conn)
        raw_t.append(run_raw(pub, i, conn if args.warm_raw else None))
        empty_project(conn)
        labtui_t.append(run_labtui(tmp, pub, i))
        print(f"run {i + 1}: labtui {labtui_t[-1]:.1f} s, raw {raw_t[-1]:.1f} s", file=sys.stderr)
    empty_project(conn)
    ml, mr = statistics.median(labtui_t), statistics.median(raw_t)
    load = os.getloadavg()[0]
    print(json.dumps({"labtui_s": [round(x, 2) for x in labtui_t], "raw_s": [round(x, 2) for x in raw_t],
                      "labtui_median_s": round(ml, 2), "raw_median_s": round(mr, 2), "ratio": round(ml / mr, 2),
                      "target": 1.3, "load_average_1m": round(load, 2),
                      "servers": "real Debian 12 machines, until the console shows the host keys" if REAL
                      else "fake (ACTIVE)",
                      "raw_connection": "warm (not timed)" if args.warm_raw else "fresh (timed, like labtui's)"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
