"""The fuzz targets on their seeds, and the targets' own ability to report a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.__main__ import main
from fuzz._registry import SELF_TESTS, TARGETS, load
from fuzz._seeds import seeds


def test_every_target_has_checked_in_seeds() -> None:
    for spec in TARGETS.values():
        assert spec.seed_dir.is_dir(), spec.name
        assert any(spec.seed_dir.iterdir()), spec.name


def test_checked_in_seeds_match_the_generator() -> None:
    # Regenerate with `python -m fuzz --write-seeds` when this fails after a deliberate change.
    expected = seeds()
    assert sorted(expected) == sorted(TARGETS)
    for name, files in expected.items():
        on_disk = {p.name: p.read_bytes() for p in TARGETS[name].seed_dir.iterdir()}
        assert on_disk == files, name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_run_clean(name: str) -> None:
    target = load(name)
    for path in sorted(TARGETS[name].seed_dir.iterdir()):
        target(path.read_bytes())
    target(b"")


def test_planted_crash_escapes_the_target() -> None:
    target = load("selftest_crash")
    target(b"fine")
    with pytest.raises(ValueError, match="planted"):
        target(b"!boom")
    assert "selftest_crash" not in TARGETS and "selftest_crash" in SELF_TESTS


def test_replay_needs_no_atheris(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--replay", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"{name} " in out for name in TARGETS)


def test_replay_reports_a_crashing_corpus_input(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus" / "selftest_crash"
    corpus.mkdir(parents=True)
    (corpus / "bad").write_bytes(b"!")
    assert main(["selftest_crash", "--replay", "--work-dir", str(tmp_path)]) == 1


def test_unknown_target_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no_such_target"]) == 2
    assert "unknown targets: no_such_target" in capsys.readouterr().err
