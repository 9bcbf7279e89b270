"""nova.virt.labtui_fake: nova's FakeDriver with a node identity that survives restarts.

nova.virt.fake.FakeDriver reports a node UUID made up fresh in every process, so a restarted
nova-compute fails with "Duplicate compute node record found". This subclass reports the
persistent local node UUID (state_path/compute_id) instead. Nova loads compute drivers only
from the nova.virt package, so the test harness copies this file there as labtui_fake.py.
"""

import os

from nova.virt import fake
from nova.virt import node as virt_node

# SIMULATION at the process boundary: a real VM's console log holds what cloud-init printed (the
# SSH host key fingerprints among it). The fake driver has no VM, so a test writes the console a
# server would show to <state>/consoles/<server name>.log; without that file the fake driver's
# own canned output is returned.
CONSOLES = os.path.join(os.environ.get("LABTUI_OPENSTACK_STATE", "/var/lib/labtui-test/openstack"), "consoles")


class LabtuiFakeDriver(fake.FakeDriver):
    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        if resources:
            resources["uuid"] = virt_node.get_local_node_uuid()
        return resources

    def get_console_output(self, context, instance):
        path = os.path.join(CONSOLES, f"{instance.display_name}.log")
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            return super().get_console_output(context, instance)

    def get_nodenames_by_uuid(self, refresh=False):
        nodes = self.get_available_nodes()
        return {virt_node.get_local_node_uuid(): nodes[0]} if nodes else {}
