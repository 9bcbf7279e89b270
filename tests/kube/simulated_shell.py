"""A simulated control-plane shell: what labtui.adapters.ssh would return from the real node, replayed.

Only what cannot run here is simulated (kubeadm's admin.conf on a real control plane, calicoctl
against a real datastore), at the process boundary: labtui hands a command string to the shell,
the simulation answers with the output the real tool prints and, for calicoctl, applies the
patch to the test API server the way calicoctl would (a PATCH of the pool through the API).

The calicoctl success line is the real format from calicoctl's resource manager
(`fmt.Printf("Successfully %s %d '%s' resource(s)\\n", past, results.NumHandled, results.SingleKind)`).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from tests.harness.kube import FakeCluster, kubeconfig_text

SUDO_NEEDS_PASSWORD = "sudo: a password is required\n"


@dataclass
class SimulatedShell:
    node: str = "cp1"
    cluster: FakeCluster | None = None
    admin_conf: str | None = None  # what `sudo cat /etc/kubernetes/admin.conf` prints
    calicoctl: bool = False
    sudo_password: bool = False
    commands: list[tuple[str, bool]] = field(default_factory=list)  # (command, quiet)

    def run(self, command: str, *, timeout: float = 30.0, quiet: bool = False) -> tuple[int, str, str]:
        self.commands.append((command, quiet))
        argv = shlex.split(command)
        if argv[:2] == ["command", "-v"]:
            return (0, "/usr/local/bin/calicoctl\n", "") if self.calicoctl and argv[2] == "calicoctl" else (1, "", "")
        if argv[:1] == ["sudo"] and self.sudo_password:
            return 1, "", SUDO_NEEDS_PASSWORD
        if argv == ["sudo", "-n", "cat", "/etc/kubernetes/admin.conf"]:
            if self.admin_conf is None:
                return 1, "", "cat: /etc/kubernetes/admin.conf: No such file or directory\n"
            return 0, self.admin_conf, ""
        if "calicoctl" in argv:
            if not self.calicoctl:
                return 127, "", "sudo: calicoctl: command not found\n"
            i = argv.index("calicoctl")
            verb, kind, name = argv[i + 1:i + 4]
            body = json.loads(argv[argv.index("-p") + 1])
            assert (verb, kind) == ("patch", "ippool"), argv
            self._patch_pool(name, body)
            return 0, "Successfully patched 1 'IPPool' resource(s)\n", ""
        return 127, "", f"bash: {argv[0]}: command not found\n"

    def _patch_pool(self, name: str, body: dict) -> None:
        from kubernetes import client

        # calicoctl talks to the datastore through the Kubernetes API: do the same against the test server
        cfg = client.Configuration()
        cfg.host = self.cluster.url
        cfg.api_key = {"authorization": "Bearer admin-token"}
        with client.ApiClient(cfg) as api:
            client.CustomObjectsApi(api).patch_cluster_custom_object(
                "crd.projectcalico.org", "v1", "ippools", name, body, _content_type="application/merge-patch+json")


def admin_conf_for(cluster: FakeCluster, token: str = "admin-token") -> str:
    """An admin.conf as kubeadm writes it, pointing at the test server."""
    return kubeconfig_text(cluster.url, token, user="kubernetes-admin", cluster="kubernetes")
