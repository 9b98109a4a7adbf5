"""`make mutation`: mutmut on each core module with its own tests, scored against the equivalents file.

For each module in tests/mutation/targets.yaml (or those named by `--modules`), in turn:
1. a fresh work directory `.mutation/<module>/` gets links to `service/` and `tests/` and a copy of
   pyproject.toml whose `[tool.mutmut]` table gains `only_mutate` (the module) and
   `pytest_add_cli_args_test_selection` (its tests): mutmut reads its configuration only from the
   current directory, and this keeps each module's run, cache and report apart;
2. `mutmut run` mutates the module and runs, per mutant, the selected tests that call the mutated
   function (mutmut records which tests call which function in a first, clean run);
3. each mutant is named by its function and the source lines it changes, `old -> new`, which stays
   the same when unrelated code moves; mutants listed in tests/mutation/equivalent.yaml under that
   name do not count.

The score of a module is killed / (mutants - equivalent); a timeout counts as killed (the tests
noticed), a mutant no selected test reaches counts as survived. Exit status 1 if a module scores
below the threshold, 2 if mutmut itself failed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TARGETS = HERE / "targets.yaml"
EQUIVALENTS = HERE / "equivalent.yaml"
WORK = REPO / ".mutation"

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code, mutmut 3.x), grouped by what
# they say about the tests: detected (the tests failed or hung), missed, or not run at all.
_DETECTED = {1, 3, 24, -24, 152, 255, 36, -9, -11}
_MISSED = {0, 33, 5}
_MUTANT_FUNCTION = re.compile(r"^(?P<base>.+)__mutmut_(?P<id>orig|\d+)$")


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's name, e.g. service.search.fusion.x_minmax__mutmut_13
    function: str  # the source function, e.g. minmax or SqliteLedger.claim
    change: str  # the changed source lines, `old -> new`
    exit_code: int | None

    @property
    def key(self) -> str:
        """How equivalent.yaml names the mutant: stable while the function's other lines change."""
        return f"{self.function}: {self.change}"


@dataclass
class Score:
    module: str
    killed: list[Mutant] = field(default_factory=list)
    survived: list[Mutant] = field(default_factory=list)
    equivalent: list[Mutant] = field(default_factory=list)
    # Listed as equivalent but killed: the entry is wrong or stale.
    killed_equivalent: list[Mutant] = field(default_factory=list)
    not_run: list[Mutant] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return len(self.killed) + len(self.survived)

    @property
    def ratio(self) -> float:
        return len(self.killed) / self.counted if self.counted else 1.0


def load_targets(path: Path = TARGETS) -> tuple[float, dict[str, list[str]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    modules = {str(module): [str(t) for t in tests] for module, tests in data["modules"].items()}
    return float(data["threshold"]), modules


def load_equivalents(path: Path = EQUIVALENTS) -> dict[str, dict[str, str]]:
    """module -> mutant key -> reason."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, str]] = {}
    for module, entries in data.items():
        for entry in entries or []:
            key = f"{entry['function']}: {entry['change']}"
            reason = str(entry.get("reason") or "").strip()
            if not reason:
                raise SystemExit(f"{path}: {module} {key!r} has no reason")
            out.setdefault(str(module), {})[key] = reason
    return out


def select(modules: dict[str, list[str]], wanted: Sequence[str]) -> list[str]:
    """Modules named as paths (service/api/auth.py) or dotted (service.api.auth), in target order."""
    if not wanted:
        return list(modules)
    normal = {w.strip().removesuffix(".py").replace(".", "/") + ".py" for w in wanted if w.strip()}
    unknown = normal - set(modules)
    if unknown:
        raise SystemExit(f"not a mutation target: {sorted(unknown)} (see {TARGETS.name})")
    return [m for m in modules if m in normal]


def module_config(pyproject: str, module: str, tests: Sequence[str]) -> str:
    """pyproject.toml with this module's `only_mutate` and test selection added to `[tool.mutmut]`."""
    header = "[tool.mutmut]\n"
    if header not in pyproject:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    added = (
        f"only_mutate = {json.dumps([module])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(list(tests))}\n"
    )
    text = pyproject.replace(header, header + added, 1)
    tomllib.loads(text)  # a key the table already had would make this invalid: fail here, not in mutmut
    return text


def prepare(workdir: Path, module: str, tests: Sequence[str]) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in ("service", "tests"):
        (workdir / name).symlink_to(REPO / name, target_is_directory=True)
    # service.contract reads the project's name from Pulumi.yaml (issue 13); pyproject's
    # `also_copy` takes it into mutmut's `mutants/` copy, where the tests run.
    (workdir / "Pulumi.yaml").symlink_to(REPO / "Pulumi.yaml")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    (workdir / "pyproject.toml").write_text(module_config(pyproject, module, tests), encoding="utf-8")


def _functions(source: str) -> dict[str, list[str]]:
    """Each mutmut function copy (`x_f__mutmut_orig`, `x_f__mutmut_3`) of a mutated file, by name."""
    lines = source.splitlines()
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _MUTANT_FUNCTION.match(node.name):
            body = lines[node.lineno - 1 : node.end_lineno]
            # The def line differs only by the copy's name.
            body[0] = body[0].replace(node.name, "", 1)
            found[node.name] = body
    return found


def _source_name(mangled: str) -> str:
    """mutmut's mangled function name as written in the source: x_minmax -> minmax, xǁCǁm -> C.m."""
    if mangled.startswith("xǁ"):
        return ".".join(part for part in mangled[2:].split("ǁ") if part)
    return mangled.removeprefix("x_")


def change(original: Sequence[str], mutated: Sequence[str]) -> str:
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.ndiff(list(original), list(mutated)):
        if line.startswith("- "):
            removed.append(line[2:].strip())
        elif line.startswith("+ "):
            added.append(line[2:].strip())
    return f"{' / '.join(removed) or '(nothing)'} -> {' / '.join(added) or '(nothing)'}"


def read_mutants(workdir: Path, module: str) -> list[Mutant]:
    mutated = workdir / "mutants" / module
    meta = json.loads(mutated.with_name(mutated.name + ".meta").read_text(encoding="utf-8"))
    copies = _functions(mutated.read_text(encoding="utf-8"))
    prefix = module.removesuffix(".py").replace("/", ".") + "."
    mutants: list[Mutant] = []
    for name, exit_code in meta["exit_code_by_key"].items():
        local = name.removeprefix(prefix)
        match = _MUTANT_FUNCTION.match(local)
        if match is None or local not in copies:
            raise SystemExit(f"cannot find the source of mutant {name} in {mutated}")
        original = copies[f"{match['base']}__mutmut_orig"]
        mutants.append(Mutant(name, _source_name(match["base"]), change(original, copies[local]), exit_code))
    return _disambiguate(mutants)


def _disambiguate(mutants: list[Mutant]) -> list[Mutant]:
    """The same change on two identical lines of one function: number the later ones (#2, #3)."""
    seen: dict[str, int] = {}
    out: list[Mutant] = []
    for m in sorted(mutants, key=lambda m: (m.function, int(m.name.rsplit("_", 1)[1]))):
        seen[m.key] = seen.get(m.key, 0) + 1
        nth = seen[m.key]
        out.append(m if nth == 1 else Mutant(m.name, m.function, f"{m.change} #{nth}", m.exit_code))
    return out


def score(module: str, mutants: Iterable[Mutant], equivalents: dict[str, str]) -> Score:
    result = Score(module)
    for m in mutants:
        if m.exit_code in _DETECTED:
            result.killed.append(m)
            if m.key in equivalents:
                result.killed_equivalent.append(m)
        elif m.exit_code in _MISSED:
            (result.equivalent if m.key in equivalents else result.survived).append(m)
        else:
            result.not_run.append(m)
    return result


def run_mutmut(workdir: Path, jobs: int) -> None:
    log = workdir / "mutmut.log"
    # PYTHONPATH would put the unmutated checkout ahead of mutmut's copy.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    mutmut = Path(sys.executable).with_name("mutmut")
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(
            [str(mutmut), "run", "--max-children", str(jobs)],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        ).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        print(tail, file=sys.stderr)
        raise SystemExit(f"mutmut failed (exit {code}); full output in {log}")


def report(result: Score, threshold: float, stale: Iterable[str]) -> list[str]:
    lines = [
        f"{result.module}: killed {len(result.killed)}, survived {len(result.survived)}, "
        f"equivalent {len(result.equivalent)} -> {result.ratio:.1%} of {result.counted} non-equivalent "
        f"(threshold {threshold:.0%})"
    ]
    for m in result.survived:
        lines += [f"  survived {m.name}", f"    function: {m.function}", f"    change: {m.change}"]
    lines += [f"  NOT RUN   {m.name} (exit {m.exit_code})" for m in result.not_run]
    lines += [f"  listed as equivalent but killed: {m.key}" for m in result.killed_equivalent]
    lines += [f"  equivalent entry matches no mutant (stale?): {key}" for key in stale]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default="", help="comma- or space-separated; default: every target")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested in parallel")
    parser.add_argument("--reuse", action="store_true", help="report on the last run without running mutmut")
    args = parser.parse_args(argv)

    threshold, targets = load_targets(TARGETS)
    equivalents = load_equivalents(EQUIVALENTS)
    unknown = set(equivalents) - set(targets)
    if unknown:
        raise SystemExit(f"{EQUIVALENTS.name} names modules that are not targets: {sorted(unknown)}")
    chosen = select(targets, re.split(r"[,\s]+", args.modules) if args.modules else [])

    scores: list[Score] = []
    for module in chosen:
        workdir = WORK / module.removesuffix(".py").replace("/", ".")
        if not args.reuse:
            print(f"mutating {module} with {', '.join(targets[module])}", flush=True)
            prepare(workdir, module, targets[module])
            run_mutmut(workdir, args.jobs)
        listed = equivalents.get(module, {})
        mutants = read_mutants(workdir, module)
        result = score(module, mutants, listed)
        stale = sorted(set(listed) - {m.key for m in mutants})
        print("\n".join(report(result, threshold, stale)), flush=True)
        scores.append(result)

    print("\nmodule                        killed  survived  equivalent  score")
    for s in scores:
        print(
            f"{s.module:<30}{len(s.killed):>6}{len(s.survived):>10}{len(s.equivalent):>12}  {s.ratio:>6.1%}"
        )
    failing = [s.module for s in scores if s.ratio < threshold or s.not_run]
    if failing:
        print(f"below {threshold:.0%} (or with mutants not run): {', '.join(failing)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
