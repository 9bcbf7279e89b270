"""nova.virt.labtui_fake: nova's FakeDriver with a node identity that survives restarts.

nova.virt.fake.FakeDriver reports a node UUID made up fresh in every process, so a restarted
nova-compute fails with "Duplicate compute node record found". This subclass reports the
persistent local node UUID (state_path/compute_id) instead. Nova loads compute drivers only
from the nova.virt package, so the test harness copies this file there as labtui_fake.py.
"""

from nova.virt import fake
from nova.virt import node as virt_node


class LabtuiFakeDriver(fake.FakeDriver):
    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        if resources:
            resources["uuid"] = virt_node.get_local_node_uuid()
        return resources

    def get_nodenames_by_uuid(self, refresh=False):
        nodes = self.get_available_nodes()
        return {virt_node.get_local_node_uuid(): nodes[0]} if nodes else {}
