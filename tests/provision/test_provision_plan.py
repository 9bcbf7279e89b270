"""The Provision stage's pure logic (labtui.provision_plan): image and flavor choice, quotas, the
group's rules from the requirements engine, cloud-init user-data, console fingerprints."""

from __future__ import annotations

import base64

from labtui.model import Encapsulation
from labtui.net.requirements import CalicoNetworking, NodeRef, derive_requirements
from labtui.net.fixes import lab_rule_fix
from labtui.provision_plan import (MIN_DISK_GB, FlavorInfo, ImageInfo, Names, choose_flavor, console_host_keys,
                                   fingerprint_of, fingerprints_printed, flavor_disk_problem, flavor_problem,
                                   guess_login_user, lab_tag, nat_warning, no_flavor_reason, pairs_cidr,
                                   quota_shortfalls, render_user_data, rules_for, shortfall_hint, ssh_cidr_problem,
                                   usable_images)

NODES = [NodeRef("cp1", "control-plane", "10.60.0.10", "10.60.0.0/24"), NodeRef("w1", "worker", "10.60.0.11", "10.60.0.0/24"),
         NodeRef("w2", "worker", "10.60.0.12", "10.60.0.0/24")]


def test_images_prefer_ubuntu_2404_then_2204_then_debian_12():
    imgs = [ImageInfo("1", "cirros-0.6.2"), ImageInfo("2", "debian-12-genericcloud"),
            ImageInfo("3", "Ubuntu 22.04 jammy"), ImageInfo("4", "noble", properties={"os_distro": "ubuntu",
                                                                                    "os_version": "24.04"}),
            ImageInfo("5", "ubuntu-24.04-broken", status="queued")]
    assert [i.id for i in usable_images(imgs)] == ["4", "3", "2", "1"]
    assert guess_login_user(imgs[1]) == "debian" and guess_login_user(imgs[3]) == "ubuntu"
    assert guess_login_user(ImageInfo("6", "x", properties={"os_admin_user": "cloud"})) == "cloud"
    assert guess_login_user(imgs[0]) == "cirros"


def test_flavors_too_small_are_refused_with_kubeadms_reason():
    tiny = FlavorInfo("a", "m1.tiny", 1, 512, 20)
    small = FlavorInfo("b", "m1.small", 1, 2048, 20)
    medium = FlavorInfo("c", "m1.medium", 2, 4096, 40)
    cp = FlavorInfo("d", "c2r2", 2, 2048, 20)
    assert "the number of available CPUs 1 is less than the required 2" in flavor_problem(small, "control-plane")
    assert "the system RAM (512 MB) is less than the minimum 1024 MB" in flavor_problem(tiny, "worker")
    assert flavor_problem(small, "worker") is None
    assert choose_flavor([tiny, small, medium, cp], "control-plane") == cp
    assert choose_flavor([tiny, small, medium, cp], "worker") == small
    assert choose_flavor([tiny], "worker") is None


def test_quota_shortfall_names_the_quota_need_and_left():
    short = quota_shortfalls({"instances": 4, "cores": 5, "ram": 5120, "ports": 4},
                             {"instances": 2, "cores": 20, "ram": None, "ports": 1})
    assert [s.message() for s in short] == ["quota instances (servers): the plan needs 4 more, 2 left",
                                           "quota ports (ports): the plan needs 4 more, 1 left"]
    hint = shortfall_hint(short)
    assert "fewer workers" in hint and "cloud admin" in hint


def test_rules_come_from_the_requirements_engine_protocol_4_from_the_group():
    reqs = derive_requirements(CalicoNetworking.for_encapsulation(Encapsulation.IPIP, pod_cidr="172.16.0.0/16"), NODES)
    rules = rules_for(reqs, "198.51.100.7/32", "172.16.0.0/16")
    keys = {(r.protocol, r.port_min, r.remote, r.cidr) for r in rules}
    assert ("4", None, "group", None) in keys
    assert ("tcp", 179, "group", None) in keys and ("tcp", 6443, "group", None) in keys
    assert ("tcp", 22, "cidr", "198.51.100.7/32") in keys
    assert not any(r.protocol == "ipip" for r in rules)
    assert not any(r.port_min == 2379 for r in rules)  # one control plane: etcd stays on it
    ipip = next(r for r in rules if r.protocol == "4")
    fix = lab_rule_fix(ipip, "G", "labtui-x")  # the one rule shape renders its API body and command
    assert fix.attrs()["protocol"] == "4" and fix.attrs()["remote_group_id"] == "G"
    assert "--protocol 4 --remote-group labtui-x" in fix.command()
    assert pairs_cidr(reqs) is None


def test_vxlan_and_crosssubnet_rules():
    vx = rules_for(derive_requirements(CalicoNetworking.for_encapsulation("VXLAN"), NODES), "10.0.0.1/32", None)
    assert ("udp", 4789) in {(r.protocol, r.port_min) for r in vx}
    assert not any(r.protocol in ("4", "ipip") for r in vx) and not any(r.port_min == 179 for r in vx)
    reqs = derive_requirements(CalicoNetworking.for_encapsulation("IPIPCrossSubnet", pod_cidr="172.16.0.0/16"), NODES)
    cross = rules_for(reqs, "10.0.0.1/32", "172.16.0.0/16")
    assert any(r.protocol is None and r.cidr == "172.16.0.0/16" for r in cross)  # unencapsulated pod traffic
    assert pairs_cidr(reqs) == "172.16.0.0/16"


def test_ssh_from_anywhere_warns():
    assert ssh_cidr_problem("0.0.0.0/0")[1].startswith("SSH from 0.0.0.0/0")
    assert ssh_cidr_problem("203.0.113.7/32") == (None, None)
    assert "not a CIDR" in ssh_cidr_problem("nope")[0]


def test_user_data_prepares_the_node_for_kubeadm():
    import yaml

    text = render_user_data("lab1", "cp1", packages=True)
    assert text.startswith("#cloud-config\n")
    for piece in ("hostname: cp1", "swapoff -a", "br_netfilter", "overlay", "net.ipv4.ip_forward = 1",
                  "emit_keys_to_console: true"):
        assert piece in text
    data = yaml.safe_load(text)
    assert data["runcmd"][0] == "swapoff -a"
    assert data["manage_etc_hosts"] is True
    assert "apt" not in data  # no proxy in the plan: apt goes direct


def test_user_data_installs_no_packages_labtui_installs_them():
    """cloud-init's own apt-get raced labtui's apt and rewrote containerd's config (audit F4/F7/F18): the
    user-data installs nothing; labtui's Kubernetes stage does, from the plan's sources."""
    import yaml

    for packages in (True, False):
        data = yaml.safe_load(render_user_data("lab1", "w1", packages=packages))
        assert "packages" not in data and "package_update" not in data
        cmds = "\n".join(data["runcmd"])
        for gone in ("apt-get", "containerd", "kubeadm", "kubelet", "pkgs.k8s.io", "config.toml", "apt-mark"):
            assert gone not in cmds, gone


def test_user_data_sends_apt_through_the_plans_proxy():
    import yaml

    data = yaml.safe_load(render_user_data("lab1", "cp1", packages=True, http_proxy="http://10.0.0.1:3142"))
    assert data["apt"] == {"proxy": "http://10.0.0.1:3142"}  # cloud-init cc_apt_configure: apt.proxy
    # an image without apt gets no apt block
    assert "apt" not in yaml.safe_load(render_user_data("lab1", "cp1", packages=False, http_proxy="http://p:3128"))


def test_console_fingerprints_and_keys_from_cloud_init_output():
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    fp = fingerprint_of(key)
    console = "\n".join([
        "[   10.1] cloud-init[800]: old boot",
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
        "256 SHA256:oldoldoldoldoldoldoldoldoldoldoldoldoldoldo root@cp1 (ED25519)",
        "-----END SSH HOST KEY FINGERPRINTS-----",
        "ci-info: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
        f"ci-info: 256 {fp} root@cp1 (ED25519)",
        "ci-info: 256 SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde root@cp1 (ECDSA)",
        "ci-info: -----END SSH HOST KEY FINGERPRINTS-----",
        "-----BEGIN SSH HOST KEY KEYS-----",
        f"ssh-ed25519 {key} root@cp1",
        "-----END SSH HOST KEY KEYS-----",
    ])
    keys = {k.key_type: k for k in console_host_keys(console)}
    assert keys["ssh-ed25519"].fingerprint == fp and keys["ssh-ed25519"].key_base64 == key  # the last boot wins
    assert keys["ecdsa-sha2-nistp256"].fingerprint.startswith("SHA256:AbCd") and keys["ecdsa-sha2-nistp256"].key_base64 is None
    assert console_host_keys("FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE") == []
    assert base64.b64decode(key)


def test_names_and_tag():
    n = Names("lab1")
    assert (n.network, n.subnet, n.router, n.group, n.keypair, n.server("cp1")) == (
        "labtui-lab1-net", "labtui-lab1-subnet", "labtui-lab1-router", "labtui-lab1", "labtui-lab1", "labtui-lab1-cp1")
    assert lab_tag("lab1") == "labtui-lab:lab1" and len(lab_tag("x" * 80)) == 60


def test_flavor_choice_skips_zero_disk_and_needs_a_root_disk():
    zero = FlavorInfo("z", "c2r2.zero", 2, 2048, 0)  # what old labtui took first: the smallest
    small_disk = FlavorInfo("s", "c2r2.d10", 2, 2048, 10)
    good = FlavorInfo("g", "c2r4.d20", 2, 4096, MIN_DISK_GB)
    assert choose_flavor([zero, small_disk, good], "control-plane") == good
    assert choose_flavor([zero, small_disk], "worker") is None
    reason = no_flavor_reason([zero, small_disk, FlavorInfo("t", "tiny", 1, 512, 20)], "worker")
    assert "c2r2.zero with a 0 GB disk" in reason and "c2r2.d10 (10 GB) with less than 20 GB disk" in reason
    assert "1 with fewer than 1 vCPU or 1024 MB RAM" in reason
    err, warn = flavor_disk_problem(zero)
    assert "zero_disk_flavor" in err and warn is None
    err, warn = flavor_disk_problem(small_disk)
    assert err is None and "10 GB disk" in warn
    assert flavor_disk_problem(good) == (None, None)


def test_nat_warning_when_a_private_address_faces_a_public_cloud():
    warn = nat_warning("192.168.1.23", ["198.51.100.0/24"])
    assert "192.168.1.23" in warn and "provision.ssh_cidr" in warn and "private address" in warn
    assert nat_warning("100.64.3.4", []) is not None  # CGNAT, the external range unknown
    assert nat_warning("10.0.0.5", ["172.24.4.0/24"]) is None  # a private cloud: no NAT between
    assert nat_warning("203.0.113.9", ["198.51.100.0/24"]) is None  # a public address is what the cloud sees


def test_fingerprint_block_with_a_syslog_prefix():
    fp = "SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde"
    head = ["<14>Dec  5 22:47:21 cloud-init: #############################################################",
            "<14>Dec  5 22:47:21 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
            f"<14>Dec  5 22:47:21 cloud-init: 256 {fp} root@cp1 (ED25519)"]
    partial = "\n".join(head)
    assert not fingerprints_printed(partial)  # still printing: not done
    whole = partial + "\n<14>Dec  5 22:47:21 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n"
    assert fingerprints_printed(whole)
    assert [(k.key_type, k.fingerprint) for k in console_host_keys(whole)] == [("ssh-ed25519", fp)]
