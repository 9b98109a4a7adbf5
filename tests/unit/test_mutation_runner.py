"""The `make mutation` runner: stable mutant names, scoring, targets and the CI trigger (issue 16)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.mutation import run
from tests.mutation.run import Mutant

ORIGINAL = """
def x_span__mutmut_orig(low, high):
    width = high - low
    return width if width > 0 else 1.0

def x_span__mutmut_1(low, high):
    width = high + low
    return width if width > 0 else 1.0

def x_span__mutmut_2(low, high):
    width = high - low
    return width if width > 1 else 1.0

def x_span__mutmut_3(low, high):
    width = high - low
    return width if width > 0 else 2.0

class Box:
    def xǁBoxǁopen__mutmut_orig(self):
        return "OPEN"
    def xǁBoxǁopen__mutmut_1(self):
        return "open"
"""


def mutated_module(workdir: Path, exit_codes: Mapping[str, int | None]) -> None:
    """What mutmut leaves in a work directory for `pkg/shapes.py`: the mutated file and its verdicts."""
    target = workdir / "mutants" / "pkg" / "shapes.py"
    target.parent.mkdir(parents=True)
    target.write_text(ORIGINAL, encoding="utf-8")
    meta = {"exit_code_by_key": {f"pkg.shapes.{name}": code for name, code in exit_codes.items()}}
    target.with_name("shapes.py.meta").write_text(json.dumps(meta), encoding="utf-8")


def test_mutants_are_named_by_function_and_changed_lines(tmp_path: Path) -> None:
    # Given mutmut's output for a module with a function and a method
    codes = {"x_span__mutmut_1": 1, "x_span__mutmut_2": 0, "x_span__mutmut_3": 0, "xǁBoxǁopen__mutmut_1": 1}
    mutated_module(tmp_path, codes)
    # When read
    mutants = {m.name.removeprefix("pkg.shapes."): m for m in run.read_mutants(tmp_path, "pkg/shapes.py")}
    # Then each is named by its source function and its change, which no line number enters
    assert mutants["x_span__mutmut_1"].key == "span: width = high - low -> width = high + low"
    assert mutants["x_span__mutmut_3"].key == (
        "span: return width if width > 0 else 1.0 -> return width if width > 0 else 2.0"
    )
    assert mutants["xǁBoxǁopen__mutmut_1"].key == 'Box.open: return "OPEN" -> return "open"'


def test_scores_count_equivalents_apart_and_flag_wrong_entries(tmp_path: Path) -> None:
    # Given one killed, two survivors of which one is listed as equivalent, and a listed one that was killed
    mutants = [
        Mutant("m1", "f", "a -> b", 1),
        Mutant("m2", "f", "c -> d", 0),
        Mutant("m3", "f", "e -> f", 0),
        Mutant("m4", "f", "g -> h", 36),  # a timeout: the tests noticed
        Mutant("m5", "f", "i -> j", 33),  # no test reaches it
        Mutant("m6", "f", "k -> l", None),  # never run
    ]
    listed = {"f: c -> d": "equal", "f: a -> b": "wrongly listed"}
    # When scored
    score = run.score("pkg/f.py", mutants, listed)
    # Then killed / (all - equivalent), and the wrong entry and the unrun mutant are reported
    assert [m.name for m in score.killed] == ["m1", "m4"]
    assert [m.name for m in score.survived] == ["m3", "m5"]
    assert [m.name for m in score.equivalent] == ["m2"]
    assert [m.name for m in score.killed_equivalent] == ["m1"]
    assert [m.name for m in score.not_run] == ["m6"]
    assert score.ratio == 0.5


def test_the_same_change_twice_in_a_function_gets_numbered() -> None:
    twins = [Mutant("p.x_f__mutmut_2", "f", "x -> y", 0), Mutant("p.x_f__mutmut_9", "f", "x -> y", 0)]
    assert [m.key for m in run._disambiguate(twins)] == ["f: x -> y", "f: x -> y #2"]


def test_a_module_below_the_threshold_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a finished run of one target: 2 of 3 killed, one survivor listed as equivalent
    (tmp_path / "targets.yaml").write_text("threshold: 0.9\nmodules:\n  pkg/shapes.py: [tests/x.py]\n")
    equivalents = tmp_path / "equivalent.yaml"
    monkeypatch.setattr(run, "TARGETS", tmp_path / "targets.yaml")
    monkeypatch.setattr(run, "EQUIVALENTS", equivalents)
    monkeypatch.setattr(run, "WORK", tmp_path / "work")
    mutated_module(
        tmp_path / "work" / "pkg.shapes",
        {"x_span__mutmut_1": 1, "x_span__mutmut_2": 0, "x_span__mutmut_3": 0},
    )
    equivalents.write_text(
        "pkg/shapes.py:\n  - function: span\n"
        "    change: 'return width if width > 0 else 1.0 -> return width if width > 0 else 2.0'\n"
        "    reason: the fallback is only used when the width is 0\n"
    )
    # Then 1 of 2 non-equivalent mutants killed fails; listing the other survivor too passes
    assert run.main(["--reuse"]) == 1
    equivalents.write_text(
        equivalents.read_text() + "  - function: span\n"
        "    change: 'return width if width > 0 else 1.0 -> return width if width > 1 else 1.0'\n"
        "    reason: pretend\n"
    )
    assert run.main(["--reuse", "--modules", "pkg.shapes"]) == 0


def test_an_equivalent_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "equivalent.yaml"
    path.write_text("pkg/shapes.py:\n  - function: span\n    change: 'a -> b'\n")
    with pytest.raises(SystemExit, match="no reason"):
        run.load_equivalents(path)


def test_module_config_adds_the_module_and_its_tests_to_the_mutmut_table() -> None:
    # Given the repository's pyproject.toml
    text = (run.REPO / "pyproject.toml").read_text(encoding="utf-8")
    # Then the per-module keys go into [tool.mutmut], and the shared ones stay
    import tomllib

    table = tomllib.loads(run.module_config(text, "service/api/auth.py", ["tests/unit/test_api_auth.py"]))
    mutmut = table["tool"]["mutmut"]
    assert mutmut["only_mutate"] == ["service/api/auth.py"]
    assert mutmut["pytest_add_cli_args_test_selection"] == ["tests/unit/test_api_auth.py"]
    assert mutmut["source_paths"] == ["service"]


def test_modules_are_chosen_by_path_or_dotted_name_and_unknown_ones_refused() -> None:
    _, targets = run.load_targets(run.TARGETS)
    assert run.select(targets, ["service.api.auth", "service/search/fusion.py"]) == [
        "service/search/fusion.py",
        "service/api/auth.py",
    ]
    assert run.select(targets, []) == list(targets)
    with pytest.raises(SystemExit, match="not a mutation target"):
        run.select(targets, ["service/nothing.py"])


def test_every_target_and_its_tests_exist_and_the_equivalents_name_targets() -> None:
    threshold, targets = run.load_targets(run.TARGETS)
    assert threshold == 0.9
    for module, tests in targets.items():
        assert (run.REPO / module).is_file(), module
        assert tests, module
        assert all((run.REPO / t).is_file() for t in tests), tests
    assert set(run.load_equivalents(run.EQUIVALENTS)) <= set(targets)


def test_the_mutation_workflow_runs_on_changes_to_any_target_or_its_tests() -> None:
    # Given the workflow's pull-request paths filter (GitHub needs literal paths there)
    workflow = yaml.safe_load((run.REPO / ".github/workflows/mutation.yml").read_text(encoding="utf-8"))
    paths = set(workflow[True]["pull_request"]["paths"])
    # Then every target module and test file, and the runner's own files, trigger it
    _, targets = run.load_targets(run.TARGETS)
    wanted = set(targets) | {t for tests in targets.values() for t in tests} | {"tests/mutation/**"}
    assert wanted <= paths
    assert "schedule" in workflow[True]


def test_the_work_directory_carries_what_the_tests_import_at_collection(tmp_path: Path) -> None:
    # Given the tests' conftest imports service.contract, which reads the project name from
    # Pulumi.yaml (issue 13): without it every mutation run failed before its first mutant
    workdir = tmp_path / "fusion"
    # When the runner prepares a module's work directory
    run.prepare(workdir, "service/search/fusion.py", ["tests/unit/test_fusion.py"])
    # Then Pulumi.yaml is there, and mutmut is told to copy it into its `mutants/` tree
    assert (workdir / "Pulumi.yaml").read_text() == (run.REPO / "Pulumi.yaml").read_text()
    mutmut = tomllib.loads((workdir / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert "Pulumi.yaml" in mutmut["also_copy"]
