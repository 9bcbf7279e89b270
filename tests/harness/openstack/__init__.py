"""A real OpenStack API for the tests: Keystone, Glance, Placement, Neutron and Nova (fake virt
driver) from PyPI, on MariaDB and RabbitMQ from Debian, all on 127.0.0.1.

Nothing underneath is real (no agents, no OVS, no VMs): security-group rules and ports are
stored, not enforced. It is an API-level backend that proves what labtui creates, reads and
changes in Neutron and Nova.

Use from pytest (import the fixtures into your conftest.py)::

    from tests.harness.openstack.fixtures import openstack_stack, incident_layout, incident  # noqa: F401

    @pytest.mark.openstack
    def test_something(incident):            # the incident layout, reset to its initial state
        incident.cloud                       # "labtui-admin" (OS_CLIENT_CONFIG_FILE is set for you)
        incident.plan(lab="x")               # labtui plan data: cp1, w1, w2, w3 on 10.100.200.0/24
        incident.security_group_name         # "k8s" (no rule for IP protocol 4)
        incident.node("w1").port_id, incident.port("w1"), incident.rules(), incident.conn

Fixtures (fixtures.py):
    openstack_stack  session: installs (once) and starts the stack (idempotent, about 0.5 s when it
                     is already up); sets OS_CLIENT_CONFIG_FILE; returns a `Stack`. Under CI
                     (CI=true) it stops the stack at the end of the session.
    incident_layout  session: `build_incident_layout()` with the admin cloud.
    incident         function: the same layout after `reset()`.

Plain Python:
    stack.start() -> Stack      install + start (idempotent); stack.stop(); stack.status()
    Stack.clouds_yaml           clouds: labtui-admin (admin), labtui-member (member role only,
                                project "lab"), labtui-badpass (wrong password), labtui-nonet
                                (a region whose catalog has no network service)
    layout.build_incident_layout(conn, ...) -> IncidentLayout   (idempotent; see layout.py)
    connect(cloud) -> openstack.connection.Connection            (project venv's openstacksdk)

Command line: `python3 -m tests.harness.openstack start|stop|status|install`.
The services' venv lives outside the repository (/var/lib/labtui-test/openstack-venv, override the
root with LABTUI_OPENSTACK_HOME) and is installed with constraints.txt. Logs: .../openstack/logs/.
"""

from __future__ import annotations

from .layout import INCIDENT_NODES, INCIDENT_POD_CIDR, INCIDENT_SUBNET, IncidentLayout, LayoutNode, build_incident_layout
from .stack import CLOUD_ADMIN, CLOUD_BADPASS, CLOUD_MEMBER, CLOUD_NONET, Stack, StackError, start, status, stop


def connect(cloud: str = CLOUD_ADMIN, stack: Stack | None = None):
    """An openstacksdk Connection to one of the harness clouds."""
    import openstack

    if stack is not None:
        import os

        os.environ["OS_CLIENT_CONFIG_FILE"] = str(stack.clouds_yaml)
    return openstack.connect(cloud=cloud, api_timeout=60)


__all__ = [
    "CLOUD_ADMIN", "CLOUD_BADPASS", "CLOUD_MEMBER", "CLOUD_NONET", "INCIDENT_NODES", "INCIDENT_POD_CIDR",
    "INCIDENT_SUBNET", "IncidentLayout", "LayoutNode", "Stack", "StackError", "build_incident_layout", "connect",
    "start", "status", "stop",
]
