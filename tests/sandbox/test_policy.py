"""Sandbox policy: strict refuses without a layer, standard without bubblewrap, off is loud.

Logic tests with the layer probe replaced at its seam; the real layers are exercised by
test_hostile.py.
"""

from __future__ import annotations

import logging

import pytest

from host.sandbox import LayerStatus, SandboxPolicy, doctor_report, layers_for
from host.sandbox import _policy as policy_module
from sdk.protocol import SandboxError

NO_BWRAP = (
    LayerStatus("process", True, "always"),
    LayerStatus(
        "bwrap", False, "bwrap not found on PATH", "install bubblewrap (apt-get install bubblewrap)"
    ),
    LayerStatus("cgroup", True, "cgroup v2 memory + pids"),
)


@pytest.fixture
def without_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "probe_layers", lambda: NO_BWRAP)
    policy_module._warn_once.cache_clear()


@pytest.mark.usefixtures("without_bwrap")
def test_strict_refuses_to_start_saying_which_layer_is_missing_and_how_to_get_it() -> None:
    with pytest.raises(SandboxError) as caught:
        layers_for(SandboxPolicy.strict, name="vendor")
    assert caught.value.code == SandboxError.code
    assert caught.value.plugin == "vendor"
    assert "bwrap" in str(caught.value)
    assert "apt-get install bubblewrap" in str(caught.value)


@pytest.mark.usefixtures("without_bwrap")
def test_standard_refuses_without_bubblewrap_naming_it_and_the_doctor() -> None:
    with pytest.raises(SandboxError) as caught:
        layers_for(SandboxPolicy.standard, name="vendor")
    assert caught.value.plugin == "vendor"
    assert "without bubblewrap" in str(caught.value)
    assert "plugbox doctor" in str(caught.value)
    assert "'process-only'" in str(caught.value)


@pytest.mark.usefixtures("without_bwrap")
def test_process_only_is_the_operators_explicit_choice_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="plugbox.sandbox"):
        assert layers_for(SandboxPolicy.process_only, name="a") == ("process", "cgroup")
        assert layers_for(SandboxPolicy.process_only, name="a") == ("process", "cgroup")
    assert sum("'process-only'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.usefixtures("without_bwrap")
def test_off_is_unsandboxed_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="plugbox.sandbox"):
        assert layers_for(SandboxPolicy.off, name="dev") == ()
    assert "UNSANDBOXED" in caplog.text


@pytest.mark.usefixtures("without_bwrap")
def test_the_doctor_report_gives_each_plugin_the_verdict_of_its_policy() -> None:
    report = doctor_report([("vendor", SandboxPolicy.strict), ("ours", SandboxPolicy.process_only)])
    verdicts = {v.plugin: v for v in report.plugins}
    assert verdicts["vendor"].refused is not None
    assert verdicts["ours"].refused is None
    assert verdicts["ours"].layers == ("process", "cgroup")
    assert [layer.name for layer in report.layers] == ["process", "bwrap", "cgroup"]
