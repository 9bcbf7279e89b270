"""Thirty nodes in parallel: setup in seconds, reach and facts for all, distinct answers."""

from __future__ import annotations

import os
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_thirty_nodes_in_parallel(make_ssh, store):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from labtui.nodes.facts import gather, load_facts, store_facts
    from tests.harness.sshnodes import SSHNodes, root_ip_forward

    t0 = time.monotonic()
    with SSHNodes(30) as lab:
        setup = time.monotonic() - t0
        assert setup < 10, f"30 nodes took {setup:.1f} s to start"
        names = [n.name for n in lab.nodes]
        ssh = make_ssh(lab)
        t1 = time.monotonic()
        statuses = ssh.check_all(names)
        results = gather(ssh, names)
        worked = time.monotonic() - t1
        assert all(s.reachable for s in statuses.values()), [s.error for s in statuses.values() if not s.reachable]
        assert all(r.ok for r in results.values()), [r.message for r in results.values() if not r.ok]
        assert {r.value.hostname for r in results.values()} == set(names)
        assert len({r.value.address for r in results.values()}) == 30
        assert worked < 20, worked
        rec = store.create_session("thirty")
        for r in results.values():
            store_facts(store, rec.id, r.value)
        assert len(load_facts(store, rec.id)) == 30
        assert root_ip_forward() == "0"
