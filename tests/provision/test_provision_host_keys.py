"""Host keys from the console: before its first SSH connection labtui reads each new server's
console log, takes the fingerprints cloud-init printed and pins the matching keys.

SIMULATION at the process boundary: the fake virt driver has no VM, so the console log of each
server is what cloud-init would print for the sshd node that stands in for that VM (same
address, its real host key's fingerprint): tests/harness/openstack/services/labtui_fake_virt.py
returns <state>/consoles/<server name>.log. The sshd nodes are real (tests/harness/sshnodes.py).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.harness.sshnodes import SSHNodes, generate_ed25519, fingerprint

pytestmark = [pytest.mark.openstack, pytest.mark.root, pytest.mark.timeout(900),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (sshd nodes in network namespaces)")]


def cloud_init_console(server: str, fps: list[tuple[str, str]]) -> str:
    """The console text cloud-init's keys-to-console module prints (cc_keys_to_console)."""
    lines = [f"[   12.345678] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final' for {server}",
             "ci-info: no authorized SSH keys fingerprints found for user ubuntu.",
             "<14>Dec  2 01:00:00 cloud-init: #############################################################",
             "-----BEGIN SSH HOST KEY FINGERPRINTS-----"]
    for fp, kind in fps:
        lines.append(f"256 {fp} root@{server} ({kind})")
    lines += ["-----END SSH HOST KEY FINGERPRINTS-----",
              "<14>Dec  2 01:00:00 cloud-init: #############################################################",
              "Cloud-init v. 24.1 finished. Datasource DataSourceOpenStackLocal.  Up 14.02 seconds"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def sshlab():
    with SSHNodes(2, names=["cp1", "w1"], trust_hosts=False) as lab:
        yield lab


def ssh_lab_plan(make_lab, sshlab, tmp_path, name="keys"):
    pub = tmp_path / "client.pub"
    pub.write_text(sshlab.client_pubkey + "\n")
    nodes = [{"name": n.name, "address": n.address, "role": "control-plane" if i == 0 else "worker",
              "user": "root", "key_file": str(sshlab.client_key)} for i, n in enumerate(sshlab.nodes)]
    return make_lab(name, nodes=nodes, node_subnet=str(sshlab.subnet), login_user="root",
                    public_key_file=str(pub), external_network=None)


def test_console_fingerprints_are_pinned_and_accepted_without_a_prompt(make_lab, sshlab, consoles, labtui, store,
                                                                       tmp_path, lab_home):
    lab = ssh_lab_plan(make_lab, sshlab, tmp_path)
    for n in sshlab.nodes:
        consoles(f"labtui-{lab}-{n.name}", cloud_init_console(f"labtui-{lab}-{n.name}", [(n.fingerprint, "ED25519")]))
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["host-keys"]["state"] == "done" and "pinned" in steps["host-keys"]["detail"]
    known = (lab_home / "known_hosts").read_text()
    for n in sshlab.nodes:
        assert n.known_hosts_line() in known
    # the first real connection (headless: an unknown key would be refused) goes through without a prompt
    from labtui.adapters.ssh import session_ssh
    from labtui.session import LabSession

    with LabSession(store, lab) as s:
        ssh = session_ssh(s.ctx)
        for n in sshlab.nodes:
            assert ssh.run(n.name, "hostname", sudo=False, timeout=30).stdout.strip() == n.name


def test_a_key_that_differs_from_the_console_is_refused(make_lab, sshlab, consoles, labtui, tmp_path, lab_home):
    lab = ssh_lab_plan(make_lab, sshlab, tmp_path, name="keys")
    other_fp = fingerprint(generate_ed25519("someone-else")[1])
    cp, w1 = sshlab.nodes
    consoles(f"labtui-{lab}-{cp.name}", cloud_init_console(f"labtui-{lab}-{cp.name}", [(cp.fingerprint, "ED25519")]))
    consoles(f"labtui-{lab}-{w1.name}", cloud_init_console(f"labtui-{lab}-{w1.name}", [(other_fp, "ED25519")]))
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 1
    step = next(s for s in json.loads(out)["steps"] if s["state"] == "failed")
    assert step["step"] == "host-keys"
    assert f"is NOT one the console of labtui-{lab}-{w1.name} printed ({other_fp}): refused" in step["detail"]
    known = (lab_home / "known_hosts").read_text() if (lab_home / "known_hosts").exists() else ""
    assert w1.address + " " not in known


def test_no_fingerprints_on_the_console_falls_back_to_asking(make_lab, sshlab, consoles, labtui, tmp_path, lab_home):
    lab = ssh_lab_plan(make_lab, sshlab, tmp_path, name="keys")  # no console files: the fake driver's canned text
    code, out, err = labtui("provision", lab, "--yes", "--json")
    assert code == 0, err[-3000:]
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert "no fingerprints on the console, labtui asks at first contact" in steps["host-keys"]["detail"]
    assert "holds no SSH host key fingerprints" in err
    # the wait ran out (3 s in these tests, 10 minutes by default), and it says what that means
    assert "timed out: after waiting 3 s" in err and "it is NOT verified" in err and "at first contact" in err
    assert not (lab_home / "known_hosts").exists() or sshlab.nodes[0].address not in (lab_home / "known_hosts").read_text()


def test_the_host_keys_step_waits_for_cloud_init_to_print_them(make_lab, sshlab, consoles, labtui, tmp_path, lab_home,
                                                               monkeypatch):
    """On a real VM cloud-init prints the fingerprints after runcmd, minutes after ACTIVE (cloud-init's
    cloud.cfg.tmpl: scripts_user, then keys_to_console): the first console reads find only the boot.
    labtui keeps reading every few seconds, for all servers together, and pins once they are there."""
    import threading

    import labtui.adapters.provision as p
    import labtui.stages.provision.host_keys as prov

    monkeypatch.setattr(prov, "HOST_KEY_WAIT", 60.0)
    lab = ssh_lab_plan(make_lab, sshlab, tmp_path, name="later")
    names = {n.name: f"labtui-{lab}-{n.name}" for n in sshlab.nodes}
    booting = "[    3.2] cloud-init[612]: Cloud-init v. 24.1 running 'init' at Sat, 05 Dec 2026 22:47:01 +0000.\n"
    for n in sshlab.nodes:
        consoles(names[n.name], booting)
    real = p.console_output
    reads: dict[str, int] = {}
    timers = []

    def console_output(c, server_id):  # the fingerprints appear ~2 s after labtui's first read of each console
        text = real(c, server_id)
        reads[server_id] = reads.get(server_id, 0) + 1
        if reads[server_id] == 1:
            server = c.conn.compute.get_server(server_id).name
            node = next(n for n in sshlab.nodes if names[n.name] == server)
            # with the syslog prefix cloud-init's console lines carry on some images
            later = booting + "".join(f"<14>Dec  5 22:47:21 cloud-init: {line}\n" for line in
                                      cloud_init_console(server, [(node.fingerprint, "ED25519")]).splitlines())
            t = threading.Timer(2.0, consoles, (server, later))
            t.start()
            timers.append(t)
        return text

    monkeypatch.setattr(p, "console_output", console_output)
    code, out, err = labtui("provision", lab, "--yes", "--json")
    for t in timers:
        t.join()
    assert code == 0, err[-3000:]
    steps = {s["step"]: s for s in json.loads(out)["steps"]}
    assert steps["host-keys"]["state"] == "done" and "every node's host key is pinned" in steps["host-keys"]["detail"]
    assert all(count >= 2 for count in reads.values()), reads  # read again until the block was there
    assert "waiting for cloud-init to print the SSH host keys of" in err
    assert "cloud-init printed the SSH host keys on the console after" in err
    known = (lab_home / "known_hosts").read_text()
    for n in sshlab.nodes:
        assert n.known_hosts_line() in known
