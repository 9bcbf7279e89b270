#!/usr/bin/env bash
# The real OpenStack test backend (tests/harness/openstack): install the services' own venv once
# (pinned by constraints.txt, outside the repository, about 1-2 min) and start Keystone, Glance,
# Placement, Neutron and Nova on MariaDB and RabbitMQ, all on 127.0.0.1 (about 1 min from empty,
# under a second when already up). Idempotent. Stop it with:
#   .venv/bin/python -m tests.harness.openstack stop
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
started=$(date +%s)
"$py" -m tests.harness.openstack start
echo "openstack backend ready in $(( $(date +%s) - started ))s (logs: ${LABTUI_OPENSTACK_HOME:-/var/lib/labtui-test}/openstack/logs)"
