"""No secret reaches the database, the event log, the session files or stdout."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

PASSPHRASE = "tr0ub4dor-and-3-horses"
TOKEN = "abcdef.0123456789abcdef"
PASSWORD = "hunter2-very-secret"


def test_no_secret_in_db_log_or_output(lab3, make_ssh, store, ssh_env, capsys):
    from labtui.session import LabSession

    key = lab3.add_client_key("secret-key", passphrase=PASSPHRASE)
    body_lines = [ln for ln in key.read_text().splitlines() if not ln.startswith("-----")]
    private_body = body_lines[1]
    store.create_session("secrets", plan=lab3.plan_data("secrets"))
    lab = LabSession(store, "secrets", emit=lambda e: print(e.line()))
    specs = [{"name": "node1", "address": lab3.nodes[0].address, "user": "root", "key_file": str(key)}]
    ssh = make_ssh(lab3, specs=specs, ssh_config=lab3.dir / "none", emit=lab.ctx.emit,
                   passphrase=lambda node, path: PASSPHRASE)
    ssh.put("node1", key.read_bytes(), "/root/copied_key", mode=0o600)
    ssh.put("node1", f"apiVersion: v1\nusers:\n- user:\n    client-key-data: {PASSWORD}\n", "/root/admin.conf")
    res = ssh.run("node1", f"echo 'kubeadm join 10.0.0.4:6443 --token {TOKEN} "
                           f"--discovery-token-ca-cert-hash sha256:{'a' * 64}'; echo password={PASSWORD}; "
                           f"cat /root/copied_key; head -n 3 /root/copied_key; sleep 0.3; tail -n +4 /root/copied_key; echo done",
                  announce=True)
    assert res.ok and TOKEN in res.stdout  # the caller gets the real output, the log does not
    assert res.stdout.endswith("done\n") and private_body in res.stdout
    conf = ssh.get("node1", "/root/admin.conf")
    assert PASSWORD.encode() in conf
    lab.close()
    ssh.close()
    printed = capsys.readouterr().out
    assert "sha256:" + "a" * 64 in printed  # discovery hashes are public and kept
    for secret in (PASSPHRASE, TOKEN, PASSWORD, *body_lines):
        assert secret not in printed, secret
        for path in store.home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), (secret, path)
    log = store.home / "labtui.log"
    assert log.exists() and "kubeadm join" in log.read_text()
    assert "<redacted private key>" in log.read_text() and "done" in log.read_text()
