"""Provision the running test cloud (run with the services' venv python; idempotent).

usage: provision.py keystone|nova CONFIG_JSON

keystone: the service project and users (each with admin + service roles: keystonemiddleware
          sends an X-Service-Token and rejects it without `service`), the services and their
          endpoints, a member-only user in its own project, and a region with no network service.
nova:     wait until conductor, scheduler and compute are up, map the compute host into the cell,
          wait for the hypervisor, then make sure the test image and flavor exist.
"""

import io
import json
import subprocess
import sys
import time

import openstack

PHASE = sys.argv[1]
CFG = json.loads(sys.argv[2])


def connect():
    return openstack.connect(
        auth_url=CFG["auth_url"], username="admin", password=CFG["admin_password"], project_name="admin",
        user_domain_name="Default", project_domain_name="Default", region_name=CFG["region"],
        identity_api_version="3", api_timeout=30,
    )


def find_or_create(finder, creator, name, **attrs):
    obj = finder(name, ignore_missing=True)
    return obj if obj is not None else creator(name=name, **attrs)


def keystone():
    conn = connect()
    idn = conn.identity
    default = idn.find_domain("Default", ignore_missing=False)
    service_project = find_or_create(idn.find_project, idn.create_project, "service", domain_id=default.id)
    admin_role = idn.find_role("admin", ignore_missing=False)
    member_role = idn.find_role("member", ignore_missing=False)
    service_role = find_or_create(idn.find_role, idn.create_role, "service")
    for user in ("glance", "placement", "neutron", "nova"):
        u = idn.find_user(user, domain_id=default.id, ignore_missing=True)
        if u is None:
            u = idn.create_user(name=user, password=CFG["service_password"], domain_id=default.id,
                                default_project_id=service_project.id)
        for role in (admin_role, service_role):
            idn.assign_project_role_to_user(service_project, u, role)
    services = {"image": "glance", "placement": "placement", "network": "neutron", "compute": "nova"}
    existing = {s.type: s for s in idn.services()}
    for stype, name in services.items():
        svc = existing.get(stype) or idn.create_service(name=name, type=stype)
        have = {(e.interface, e.region_id) for e in idn.endpoints(service_id=svc.id)}
        for interface in ("public", "internal", "admin"):
            if (interface, CFG["region"]) not in have:
                idn.create_endpoint(service_id=svc.id, interface=interface, url=CFG["endpoints"][stype],
                                    region_id=CFG["region"])
    # a member-only user in its own project (for 403 tests)
    project = find_or_create(idn.find_project, idn.create_project, CFG["member_project"], domain_id=default.id)
    member = idn.find_user(CFG["member_user"], domain_id=default.id, ignore_missing=True)
    if member is None:
        member = idn.create_user(name=CFG["member_user"], password=CFG["member_password"], domain_id=default.id,
                                 default_project_id=project.id)
    idn.assign_project_role_to_user(project, member, member_role)
    # a region whose catalog has identity only: a cloud with no network service
    region = CFG["no_network_region"]
    if idn.find_region(region, ignore_missing=True) is None:
        idn.create_region(id=region)
    identity = next(s for s in idn.services() if s.type == "identity")
    have = {(e.interface, e.region_id) for e in idn.endpoints(service_id=identity.id)}
    for interface in ("public", "internal", "admin"):
        if (interface, region) not in have:
            idn.create_endpoint(service_id=identity.id, interface=interface, url=CFG["auth_url"] + "/",
                                region_id=region)
    print(json.dumps({"member_project_id": project.id}))


def nova():
    conn = connect()
    deadline = time.monotonic() + 240
    discovered = False
    while True:
        try:
            services = {s.binary: s for s in conn.compute.services()}
            up = all(services.get(b) is not None and services[b].state == "up"
                     for b in ("nova-conductor", "nova-scheduler", "nova-compute"))
            if up and not discovered:
                subprocess.run([CFG["nova_manage"], "--config-file", CFG["nova_conf"], "cell_v2", "discover_hosts"],
                               check=True, capture_output=True, timeout=120)
                discovered = True
            if discovered and any(True for _ in conn.compute.hypervisors()):
                rps = list(conn.placement.resource_providers())
                if rps:
                    break
        except openstack.exceptions.SDKException as exc:
            print(f"waiting: {exc}", file=sys.stderr)
        if time.monotonic() > deadline:
            raise SystemExit("nova did not become ready (conductor, scheduler, compute up and a hypervisor)")
        time.sleep(1)
    if conn.image.find_image(CFG["image"], ignore_missing=True) is None:
        conn.image.create_image(name=CFG["image"], disk_format="raw", container_format="bare",
                                visibility="public", data=io.BytesIO(b"\0" * 1024))
    if conn.compute.find_flavor(CFG["flavor"], ignore_missing=True) is None:
        conn.compute.create_flavor(name=CFG["flavor"], ram=64, vcpus=1, disk=1)
    print(json.dumps({"ready": True}))


if __name__ == "__main__":
    {"keystone": keystone, "nova": nova}[PHASE]()
