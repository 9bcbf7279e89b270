"""A tiny ML2 mechanism driver that binds every port (the test backend runs no agents).

Without a mechanism driver that binds, every port fails to bind and Nova never gets a usable
port. Registered under the entry point group neutron.ml2.mechanism_drivers as `labtui_fake`.
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class LabtuiFakeMechanismDriver(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True},
                                status=constants.PORT_STATUS_ACTIVE)
            return
