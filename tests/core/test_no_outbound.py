"""The suite's safety net: a connect that would leave the machine fails the test at once."""

from __future__ import annotations

import socket

import pytest


def test_a_private_address_outside_the_test_networks_is_refused():
    with socket.socket() as s, pytest.raises(AssertionError) as err:
        s.connect(("10.254.254.4", 6443))  # on no test network: the default route would carry it out
    assert "would leave this machine" in str(err.value)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
