"""Issue 18, headless: options are refused up front with a clear message (no connection, no
per-node 'unexpected error')."""

from __future__ import annotations

import pytest

from labtui.cli import main


@pytest.mark.parametrize("value", ["-5", "0", "nan", "abc"])
def test_nodes_check_refuses_a_timeout_that_is_not_positive_before_connecting(store, incident_plan_data, capsys, value):
    store.create_session("lab", plan=incident_plan_data, wizard="nodes")
    with pytest.raises(SystemExit) as exited:  # argparse's usage error, before any connection
        main(["nodes", "check", "lab", f"--timeout={value}"])
    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert "--timeout" in captured.err and "seconds" in captured.err
    assert "unexpected error" not in captured.out + captured.err and "node" not in captured.out


def test_nodes_run_refuses_a_negative_timeout_written_after_the_node(store, incident_plan_data, capsys):
    store.create_session("lab", plan=incident_plan_data, wizard="nodes")
    code = main(["nodes", "run", "lab", "cp1", "--timeout", "-5", "--", "true"])
    captured = capsys.readouterr()
    assert code != 0
    assert "--timeout" in captured.err and "positive number of seconds" in captured.err
    assert "unexpected error" not in captured.out + captured.err


def test_every_field_of_sessions_json_is_documented_in_the_readme(store, incident_plan_data):
    from pathlib import Path

    from labtui.session import lab_summary

    store.create_session("lab", plan=incident_plan_data, wizard="nodes")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("`labtui sessions --json` gives one object per lab"):]
    section = section[:section.index("\n\n", section.index("| field |"))]
    for key in lab_summary(store, store.get_session("lab")):
        assert f"`{key}`" in section, key
