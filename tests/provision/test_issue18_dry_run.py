"""Issue 18 item 9: a Provision dry run with a wrong input names it once (not 'cannot be checked before
the steps above are applied' on every step) and reads the cloud's offer once per run, on the real
OpenStack test backend."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.openstack, pytest.mark.timeout(600)]


@pytest.fixture
def offers(monkeypatch):
    import labtui.adapters.provision as p

    calls = []
    real = p.offer

    def counted(c):
        calls.append(1)
        return real(c)

    monkeypatch.setattr(p, "offer", counted)
    return calls


def test_a_missing_public_key_file_is_named_once_and_the_cloud_not_read_for_it(make_lab, labtui, empty, offers):
    lab = make_lab("lab1", public_key_file="/nonexistent/id.pub")
    code, out, err = labtui("up", lab, "--from", "provision", "--until", "provision", "--dry-run")
    assert code == 1, out + err
    assert "cannot be checked before the steps above are applied" not in out
    assert out.count("cannot read /nonexistent/id.pub") == 1
    assert "the plan's input is wrong: Provision: Public key file: cannot read /nonexistent/id.pub" in out
    assert "ssh-keygen -t ed25519" in out
    assert "not checked (the input problem named at What the cloud offers)" in out
    assert offers == []  # the plan's own file is read before the cloud is asked
    assert "Traceback" not in err


def test_a_wrong_image_is_named_once_and_the_offer_read_once_per_run(make_lab, labtui, empty, offers):
    lab = make_lab("lab1", image="no-such-image")
    code, out, err = labtui("up", lab, "--from", "provision", "--until", "provision", "--dry-run")
    assert code == 1, out + err
    assert out.count("has no active image named 'no-such-image'") == 1
    assert len(offers) == 1
