"""The multiprocess directory as a setting: read from prometheus-client's own variable, and refused
at start-up when the library cannot use it (it chooses its mode when first imported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstats.app import create_app
from callstats.config import Settings
from callstats.metrics.instruments import Metrics, MetricsSetupError


def test_the_directory_is_prometheus_clients_own_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert Settings().prometheus_multiproc_dir == str(tmp_path)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", " ")
    assert Settings().prometheus_multiproc_dir is None


def test_a_directory_set_after_the_library_was_imported_stops_the_app(
    settings: Settings, tmp_path: Path
) -> None:
    """This test process imported prometheus-client without the variable: its values live in memory,
    so a directory named only now would never see them. One clear error instead of wrong sums."""
    with pytest.raises(MetricsSetupError, match="imported before it"):
        create_app(settings.model_copy(update={"prometheus_multiproc_dir": str(tmp_path)}))
    with pytest.raises(MetricsSetupError):
        Metrics(str(tmp_path))
