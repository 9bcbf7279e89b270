"""What the cloud offers, and the choices the plan's provision block makes from it (image, login,
flavors, network, external network, SSH source, keypair): read once per run."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from labtui.adapters import provision as p
from labtui.errors import LabError
from labtui.model import ProvisionSpec
from labtui.provision_plan import (
    choose_flavor,
    flavor_disk_problem,
    flavor_problem,
    guess_login_user,
    nat_warning,
    no_flavor_reason,
    ssh_cidr_problem,
    supports_packages,
    usable_images,
)
from labtui.stages.cloud import service
from labtui.stages.provision.common import SCOPE, ProvisionStep, bad_input, lab_names, spec
from labtui.steps import CheckResult, StepContext


def choices(ctx: StepContext) -> dict[str, Any]:
    """Read what the cloud offers and decide image, login, flavors, network, SSH source and key.
    Raises LabError naming the plan field and what to do. Cached for the run."""
    cached = getattr(ctx.memo, "provision_choices", None)
    if cached is not None:
        return cached
    s = spec(ctx) or ProvisionSpec()
    plan = ctx.plan
    # the plan's own inputs first: a public key file that cannot be read is said before the cloud is read
    public_key = None if s.keypair else public_key_of(s)
    c = service(ctx)
    run = ctx.memo.bucket("provision")
    if "offer" not in run:  # read once per run, whatever the steps that ask (a refused input included)
        run["offer"] = p.offer(c)
    offer = run["offer"]
    out: dict[str, Any] = {"warnings": []}
    # image
    images = usable_images(offer["images"])
    if s.image:
        img = next((i for i in images if s.image in (i.id, i.name)), None)
        if img is None:
            raise bad_input("Image", f"cloud {c.name} has no active image named {s.image!r}",
                            "choose one of: " + (", ".join(i.name for i in images[:8]) or "(none: upload an Ubuntu "
                                                 "24.04 cloud image first)"), "no-image")
    else:
        img = images[0] if images else None
        if img is None or img.distro not in ("ubuntu", "debian"):
            raise bad_input("Image", f"cloud {c.name} has no Ubuntu 24.04 / 22.04 or Debian 12 image"
                            + (f" (it has: {', '.join(i.name for i in images[:6])})" if images else " (no active image)"),
                            "upload an Ubuntu cloud image (openstack image create --disk-format qcow2 --file "
                            "noble-server-cloudimg-amd64.img ubuntu-24.04), or name one in the plan (provision.image)",
                            "no-image")
    out["image"] = {"id": img.id, "name": img.name, "label": img.label, "packages": supports_packages(img)}
    out["login_user"] = s.login_user or guess_login_user(img)
    out["images"] = [i.label for i in images]
    # flavors
    for role, wanted in (("control-plane", s.flavor_control_plane), ("worker", s.flavor_worker)):
        if wanted:
            fl = next((f for f in offer["flavors"] if wanted in (f.id, f.name)), None)
            if fl is None:
                raise bad_input(f"Flavor ({role})", f"cloud {c.name} has no flavor {wanted!r}",
                                "choose one of: " + ", ".join(f.label for f in sorted(offer["flavors"],
                                                                                      key=lambda f: (f.vcpus, f.ram))[:8]),
                                "no-flavor")
            problem = flavor_problem(fl, role) or flavor_disk_problem(fl)[0]
            if problem:
                bigger = [f.name for f in offer["flavors"] if flavor_problem(f, role) is None and f.disk > 0]
                raise bad_input(f"Flavor ({role})", problem,
                                ("choose another flavor: " + ", ".join(bigger)) if bigger else "ask the cloud admin",
                                "flavor-too-small")
            warn = flavor_disk_problem(fl)[1]
            if warn:
                out["warnings"].append(warn)
                ctx.warn(warn)
        else:
            fl = choose_flavor(offer["flavors"], role)
            if fl is None:
                raise bad_input(f"Flavor ({role})", f"cloud {c.name}: {no_flavor_reason(offer['flavors'], role)}",
                                "ask the cloud admin for a flavor with 2 vCPU, 2 GB RAM and a 20 GB disk (workers: 1 "
                                "vCPU, 1 GB), or name a flavor in the plan (provision.flavor_control_plane / "
                                "flavor_worker)", "flavor-too-small")
        out[role] = {"id": fl.id, "name": fl.name, "vcpus": fl.vcpus, "ram": fl.ram, "disk": fl.disk,
                     "label": fl.label}
    # network
    node_subnet = plan.node_subnet if plan else None
    if s.network:
        net = next((n for n in offer["networks"] if s.network in (n["id"], n["name"])), None)
        if net is None:
            raise bad_input("Network", f"cloud {c.name} has no network {s.network!r}",
                            "name an existing tenant network, or leave it empty and labtui creates one", "no-network")
        subs = p.subnets_of(c, net["id"])
        match = next((x for x in subs if same_net(x["cidr"], node_subnet)), None)
        if match is None:
            raise bad_input("Network", f"network {net['name']} has no subnet {node_subnet} (it has: "
                            f"{', '.join(x['cidr'] for x in subs) or 'no subnet'})",
                            "set the plan's node subnet to the network's subnet, or let labtui create a network",
                            "subnet-mismatch")
        out["network"] = {"id": net["id"], "name": net["name"], "subnet_id": match["id"], "existing": True}
        if s.dns_nameservers:
            note = (f"DNS servers: the network {net['name']} exists, labtui does not change its subnet; set them "
                    f"yourself if its DHCP gives none: openstack subnet set "
                    + " ".join(f"--dns-nameserver {d}" for d in s.dns_nameservers) + f" {match['id']}")
            out["warnings"].append(note)
            ctx.warn(note)
    else:
        out["network"] = {"existing": False}
    # external network
    ext = None
    if s.external_network:
        ext = next((n for n in offer["networks"] if n["external"] and s.external_network in (n["id"], n["name"])), None)
        if ext is None:
            raise bad_input("External network", f"cloud {c.name} has no external network {s.external_network!r}",
                            "choose one of: " + (", ".join(n["name"] for n in offer["networks"] if n["external"])
                                                 or "(none: provision without one)"), "no-external-network")
    out["external"] = {"id": ext["id"], "name": ext["name"]} if ext else None
    out["floating_ip"] = bool(ext) and s.floating_ip is not False
    # SSH source
    cidr = s.ssh_cidr
    if not cidr:
        mine = p.my_address(c)
        if not mine:
            raise bad_input("SSH source", "labtui cannot tell your address", "set provision.ssh_cidr to YOUR.IP/32")
        cidr = f"{mine}/32"
        if ext:  # behind NAT the cloud sees another address than the one labtui guessed (audit F9)
            try:
                ext_cidrs = [x["cidr"] for x in p.subnets_of(c, ext["id"])]
            except LabError:
                ext_cidrs = []  # a member may not see the external network's subnets: warn on the private side alone
            nat = nat_warning(mine, ext_cidrs)
            if nat:
                out["warnings"].append(nat)
                ctx.warn(nat)
    err, warn = ssh_cidr_problem(cidr)
    if err:
        raise bad_input("SSH source", err, "write it as CIDR, e.g. 203.0.113.7/32")
    if warn:
        out["warnings"].append(warn)
        ctx.warn(warn)
    out["ssh_cidr"] = str(ipaddress.ip_network(cidr.strip(), strict=False))
    # keypair
    if s.keypair:
        if not any(k["name"] == s.keypair for k in offer["keypairs"]):
            raise bad_input("Keypair", f"cloud {c.name} has no keypair {s.keypair!r}",
                            "name one of: " + (", ".join(k["name"] for k in offer["keypairs"]) or "(none)")
                            + ", or leave it empty to import your public key", "no-keypair")
        out["keypair"] = {"name": s.keypair, "existing": True}
    else:
        assert public_key is not None
        path, text = public_key
        out["keypair"] = {"name": lab_names(ctx).keypair, "existing": False, "public_key": text,
                          "file": str(path), "private": str(path)[:-4] if str(path).endswith(".pub") else None}
    if s.availability_zone and offer["availability_zones"] and \
            s.availability_zone not in offer["availability_zones"]:
        raise bad_input("Availability zone", f"cloud {c.name} has no availability zone {s.availability_zone!r}",
                        "choose one of: " + ", ".join(offer["availability_zones"]))
    out["availability_zone"] = s.availability_zone
    out["dns_nameservers"] = list(s.dns_nameservers or [])
    out["offer"] = {"images": out["images"], "flavors": [f.label for f in offer["flavors"]],
                    "networks": [n["name"] for n in offer["networks"] if not n["external"]],
                    "external_networks": [n["name"] for n in offer["networks"] if n["external"]],
                    "routers": [r["name"] for r in offer["routers"]],
                    "keypairs": [k["name"] for k in offer["keypairs"]],
                    "availability_zones": offer["availability_zones"]}
    ctx.memo.provision_choices = out
    return out


def public_key_of(s: ProvisionSpec) -> tuple[Path, str]:
    """The plan's public key file and its text (the file is read, never the private key): a LabError
    naming the field when it cannot be read or is not an OpenSSH public key."""
    path = Path(s.public_key_file or "~/.ssh/id_ed25519.pub").expanduser()
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise bad_input("Public key file", f"cannot read {path}: {exc.strerror or exc}",
                        "create a key with `ssh-keygen -t ed25519`, or set provision.public_key_file / "
                        "provision.keypair") from None
    if "PRIVATE KEY" in text or not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise bad_input("Public key file", f"{path} is not an OpenSSH public key",
                        "give the .pub file (labtui never uploads or stores a private key)")
    return path, text


def same_net(a: str | None, b: str | None) -> bool:
    try:
        return ipaddress.ip_network(a or "", strict=False) == ipaddress.ip_network(b or "", strict=False)
    except ValueError:
        return False


class OfferStep(ProvisionStep):
    id = "offer"
    title = "What the cloud offers"
    why = (
        "labtui reads the project's images, flavors, networks, routers, external networks, keypairs and\n"
        "availability zones. It prefers an Ubuntu 24.04 / 22.04 or Debian 12 cloud image and guesses its\n"
        "login user from the image's metadata. kubeadm refuses a control plane with fewer than 2 vCPU or\n"
        "2 GB RAM (workers: 1 vCPU, 1 GB): smaller flavors are refused here with kubeadm's own reason."
    )
    hint = "set the plan's provision block (image, flavors, network, external network, keypair)"

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        ch = choices(ctx)
        ctx.store.put_facts(ctx.session.id, SCOPE, {"choices": {k: v for k, v in ch.items() if k != "keypair"} |
                                                    {"keypair": {k: v for k, v in ch["keypair"].items()
                                                                 if k != "public_key"}}})
        plan = ctx.plan
        net = (f"existing network {ch['network']['name']}" if ch["network"]["existing"]
               else f"a new network for {plan.node_subnet if plan else None}")
        detail = (f"image {ch['image']['label']} (login {ch['login_user']}); control plane "
                  f"{ch['control-plane']['name']}, workers {ch['worker']['name']}; {net}"
                  + (f", router to {ch['external']['name']}" if ch["external"] else ", no external network")
                  + f"; SSH from {ch['ssh_cidr']}"
                  + (f"; DNS {', '.join(ch['dns_nameservers'])}" if ch.get("dns_nameservers") else "")
                  + "".join(f"\n    ! {w}" for w in ch.get("warnings") or []))
        return CheckResult(True, detail, {"choices": ctx.store.facts(ctx.session.id, SCOPE).get(SCOPE, {}).get("choices")})
