#!/usr/bin/env bash
# Real Debian machines for the OpenStack test backend (tests/harness/machines.py): the Debian 12
# root filesystem the test cloud's Nova boots with systemd-nspawn (mmdebstrap once, about 30 s,
# cached under /var/lib/labtui-test/images/debian-12), its Glance image debian-12-labtui-machine,
# and apt-cacher-ng on port 3142 (the machines' apt proxy). Idempotent; runs after openstack.sh
# (named to sort after it) and starts the backend itself if needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
# Debian's own apt-cacher-ng service (started by the package where services may start) holds
# port 3142 with the stock Remap- rules, which answer 503 here: the harness runs its own.
if [ -f /run/apt-cacher-ng/pid ] && kill -0 "$(cat /run/apt-cacher-ng/pid)" 2>/dev/null; then
  /etc/init.d/apt-cacher-ng stop || true
  update-rc.d apt-cacher-ng disable >/dev/null 2>&1 || true
fi
started=$(date +%s)
"$py" -m tests.harness.openstack start >/dev/null
"$py" -m tests.harness.machines setup
echo "real machines ready in $(( $(date +%s) - started ))s"
