"""The Provision stage: from an OpenStack project to the lab's machines (between Plan and Nodes).

When it applies: the plan has a cloud AND a `provision` block (labtui.model.ProvisionSpec).
A plan without one adopts machines that exist already; every step is then skipped with that
reason. The plan's node addresses are the fixed IPs the servers' ports get on the node subnet,
so the Nodes and Cloud stages find the servers by address with nothing rewritten.

Steps: what the cloud offers -> quotas (and name clashes) first -> network -> security group
(rules from the same requirements engine as the cloud check) -> keypair -> machines (in
parallel, BUILD -> ACTIVE per server) -> host keys from the console. Each resource is a
`cloud.*` change kind (labtui.changes.cloud) run by the executor and recorded with its delete;
labtui.stages.teardown deletes exactly what the lab created.

One module per step family: `common` (what the plan asks, the steps' base classes), `offer` (what
the cloud offers and the choices made from it), `quotas`, `resources` (network, security group,
keypair), `machines` (ports, servers, floating IP, the way in), `host_keys` (pinned from the console).
"""

from __future__ import annotations

from labtui.stages.provision.host_keys import HostKeysStep
from labtui.stages.provision.machines import MachinesStep
from labtui.stages.provision.offer import OfferStep
from labtui.stages.provision.quotas import QuotaStep
from labtui.stages.provision.resources import GroupStep, KeypairStep, NetworkStep
from labtui.steps import Wizard


def build() -> Wizard:
    return Wizard("provision", "Provision", [OfferStep(), QuotaStep(), NetworkStep(), GroupStep(), KeypairStep(),
                                             MachinesStep(), HostKeysStep()])
