"""Hash-locked installs (issue 17): compile, check and install the lock files in `locks/`.

- `pyproject.toml` (dependencies and extras) says WHAT is needed and `constraints.txt` pins WHICH
  versions; `locks/<set>.txt` adds the sha256 of every file, so a fork installs exactly the
  distributions this repository tested. One lock per install set (`SETS`).
- Each lock's first line records the digest of those inputs: `check` fails, naming the set and
  the pins that moved, when an input changed after the last `make lock`.
- `install` runs pip in hash-checking mode (`--require-hashes --no-deps`: pip installs the
  lock and resolves nothing). On Linux, torch alone is looked up with PyTorch's CPU index
  appended to the machine's pip configuration (never replacing it): PyPI's Linux torch is
  the CUDA build, several GB of `nvidia-*` and `triton` wheels, while the lock pins the CPU
  build (`2.13.0+cpu`, which satisfies `torch==2.13.0`). The machine's configured sources are
  tried first for torch, then the same install with the CPU index added.
  https://pytorch.org/get-started/locally/ (pip, Linux, CPU: `--index-url .../whl/cpu`)

Only the standard library is imported here: `make` runs this before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = ROOT / "locks"
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"

# Install set -> extras of pyproject.toml on top of `[project].dependencies`.
SETS: dict[str, tuple[str, ...]] = {
    "runtime": (),  # service/ in Lambda: what `make package` ships
    "local": ("local",),  # the local platform alone
    # Every CI job that deploys, previews, checks drift or builds the artifact: the Pulumi program,
    # the policy pack, and what `make package`'s artifact smoke runs the zip against (`smoke`).
    # No torch, no model: the build job runs on the Lambda platform (arm64, the runtime's Python).
    "infra": ("infra", "smoke"),
    # `make dev`, `make test` and `make mutation`: everything
    "dev": ("local", "dev", "infra", "mutation"),
}
# The set every other one is constrained to, so that one package has one version in all locks.
FULL_SET = "dev"
# What the Lambda artifact is built from (infra/tools/package.py, Makefile RUNTIME_LOCK).
RUNTIME_LOCK = LOCK_DIR / "runtime.txt"

TORCH = "torch"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# Distributions that only a CUDA build of torch pulls in.
CUDA_ONLY = re.compile(r"^(nvidia-.*|triton|pytorch-triton.*)$")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
# The installer: uv, itself installed by pip from this hash lock (compiled by `make lock`).
INSTALLER_LOCK = LOCK_DIR / "installer.txt"
INSTALLER_INPUT = LOCK_DIR / "installer.in"

_HEADER = re.compile(r"^# inputs: ([0-9a-f]{64})$")


@dataclass(frozen=True)
class Target:
    """A platform a lock must install on: CPython `python` on manylinux `machine`."""

    python: str
    machine: str

    def __str__(self) -> str:
        return f"cp{self.python.replace('.', '')}-manylinux-{self.machine}"

    def pip_args(self) -> list[str]:
        # The manylinux tags Lambda's Amazon Linux 2023 (glibc 2.34) and GitHub's Ubuntu 24.04 run;
        # pip does not expand a given --platform to the older manylinux_2_x spellings, so list them.
        tags = [
            f"manylinux2014_{self.machine}",
            f"manylinux_2_17_{self.machine}",
            f"manylinux_2_28_{self.machine}",
            f"manylinux_2_34_{self.machine}",
        ]
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        for tag in tags:
            args += ["--platform", tag]
        return args


# The developers' machine and CI's test jobs: the locks are compiled there (requires-python's
# floor), and the dev lock's CPU torch is one wheel of this platform only.
DEVELOPER = Target("3.11", "x86_64")
_MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
_STACK_VALUE = re.compile(r"^\s*[\w-]+:(lambdaRuntime|lambdaArchitecture):\s*(\S+)\s*$", re.MULTILINE)


def lambda_target(root: Path = ROOT) -> Target:
    """The Lambda platform of the stack files (rag-platform:lambdaRuntime / :lambdaArchitecture).

    Read with a regular expression: `make lock` runs before any virtualenv (no PyYAML); the
    build (infra/tools/package.py) fails when stacks disagree.
    """
    found: dict[str, set[str]] = {}
    for path in sorted(root.glob("Pulumi.*.yaml")):
        for key, value in _STACK_VALUE.findall(path.read_text(encoding="utf-8")):
            found.setdefault(key, set()).add(value)
    (runtime,) = found["lambdaRuntime"]
    (arch,) = found["lambdaArchitecture"]
    return Target(runtime.removeprefix("python"), _MACHINES[arch])


def targets(set_name: str) -> tuple[Target, ...]:
    """Where a set's lock must install: the deploy-side sets also on the Lambda platform."""
    return (DEVELOPER, lambda_target()) if set_name in PORTABLE_SETS else (DEVELOPER,)


# The sets CI installs off the developer platform (the build job runs on Lambda's): their locks
# must hold a wheel of that platform for every pin, which `platform_gaps` checks with pip.
PORTABLE_SETS = ("runtime", "infra")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def lock_path(name: str) -> Path:
    return LOCK_DIR / f"{name}.txt"


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def inputs_digest(
    pyproject: Path = PYPROJECT, constraints: Path = CONSTRAINTS, installer_input: Path = INSTALLER_INPUT
) -> str:
    """sha256 over what a lock is compiled from; the rest of pyproject.toml (tool config) is not."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    relevant = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}).get("requires", []),
        "constraints": [
            line.strip() for line in constraints.read_text(encoding="utf-8").splitlines() if line.strip()
        ],
        "sets": SETS,
        "installer": installer_input.read_text(encoding="utf-8").split() if installer_input.exists() else [],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def pins(text: str) -> dict[str, str]:
    """{normalized name: version} of every `name==version` line of a requirements file."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def recorded_digest(text: str) -> str | None:
    first = text.splitlines()[0] if text else ""
    match = _HEADER.match(first)
    return match.group(1) if match else None


def requirement_names(set_name: str, pyproject: Path = PYPROJECT) -> set[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project.get("dependencies", []))
    for extra in SETS[set_name]:
        reqs += project["optional-dependencies"][extra]
    return {normalize(m.group(1)) for r in reqs if (m := _NAME.match(r))}


def _same_version(locked: str, pinned: str) -> bool:
    # `torch==2.13.0` in constraints.txt is satisfied by the locked CPU build `2.13.0+cpu`
    # (PEP 440: a public version specifier ignores the local label).
    return locked == pinned or locked.split("+", 1)[0] == pinned


def staleness(set_name: str, pyproject: Path = PYPROJECT, constraints: Path = CONSTRAINTS) -> list[str]:
    """Why `locks/<set>.txt` no longer matches its inputs; empty when it is fresh."""
    path = LOCK_DIR / f"{set_name}.txt"
    if not path.exists():
        return [f"{path.name} is missing"]
    text = path.read_text(encoding="utf-8")
    if recorded_digest(text) == inputs_digest(pyproject, constraints):
        return []
    locked = pins(text)
    reasons = [
        f"{name} is required but not locked" for name in sorted(requirement_names(set_name, pyproject))
    ]
    reasons = [r for r in reasons if r.split(" ", 1)[0] not in locked]
    pinned = pins(constraints.read_text(encoding="utf-8"))
    reasons += [
        f"{name}: constraints.txt pins {version}, the lock has {locked[name]}"
        for name, version in sorted(pinned.items())
        if name in locked and not _same_version(locked[name], version)
    ]
    return reasons or ["pyproject.toml or constraints.txt changed after the lock was compiled"]


def check(sets: Iterable[str] = SETS) -> list[str]:
    problems = [
        f"locks/{name}.txt is stale: {reason} (run `make lock`)"
        for name in sets
        for reason in staleness(name)
    ]
    installer = INSTALLER_LOCK.read_text(encoding="utf-8") if INSTALLER_LOCK.exists() else ""
    if recorded_digest(installer) != inputs_digest():
        problems.append(f"{INSTALLER_LOCK.name} is stale or missing (run `make lock`)")
    return problems


@dataclass(frozen=True)
class Block:
    """One requirement of a lock file with its hash and comment lines."""

    name: str
    text: str


def blocks(text: str) -> list[Block]:
    """The lock split into one block per pinned distribution (pip-compile's layout)."""
    found: list[Block] = []
    current: list[str] = []
    name = ""
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            if current and name:
                found.append(Block(name, "\n".join(current) + "\n"))
            current, name = [line], normalize(match.group(1))
        elif name:
            current.append(line)
    if current and name:
        found.append(Block(name, "\n".join(current) + "\n"))
    return found


@dataclass(frozen=True)
class Sources:
    """The package sources of this machine's pip configuration (files and PIP_* variables)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    cert: str | None = None

    def uv_args(self) -> list[str]:
        args = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args


_CONFIG_LINE = re.compile(r"^[^.]*\.(?P<key>[a-z-]+)='(?P<value>.*)'$")


def parse_pip_config(listing: str) -> Sources:
    """`pip config list` output (`scope.key='value'` per line) -> the sources it names."""
    values: dict[str, list[str]] = {}
    for line in listing.splitlines():
        match = _CONFIG_LINE.match(line.strip())
        if match:
            values.setdefault(match.group("key"), []).extend(match.group("value").split())
    index = values.get("index-url", [])
    certs = values.get("cert", [])
    return Sources(
        index_url=index[-1] if index else None,
        extra_index_urls=tuple(dict.fromkeys(values.get("extra-index-url", []))),
        find_links=tuple(dict.fromkeys(values.get("find-links", []))),
        cert=certs[-1] if certs else None,
    )


def pip_sources(python: str, run: Runner) -> Sources:
    listing = run([python, "-m", "pip", "config", "list"], check=False, capture_output=True, text=True)
    return parse_pip_config(listing.stdout if listing.returncode == 0 else "")


def install_commands(
    python: str,
    lock: Path,
    requirements_dir: Path,
    *,
    platform: str = sys.platform,
    editable: bool = True,
    uv: str | None = None,
    sources: Sources | None = None,
) -> list[list[str]]:
    """The installer invocations that put exactly `lock` (then the project, editable) into a venv.

    With `uv`, uv installs (in parallel, from its cache) from the sources of the machine's pip
    configuration, passed on explicitly because uv does not read pip's files; without it, pip.
    """
    parts = blocks(lock.read_text(encoding="utf-8"))
    torch = [b for b in parts if b.name == TORCH]
    rest = [b for b in parts if b.name != TORCH]
    if uv:
        # unsafe-best-match: like pip, take a pin from whichever configured source has it.
        install = [uv, "pip", "install", "--quiet", "--python", python, "--require-hashes", "--no-deps"]
        install += ["--index-strategy", "unsafe-best-match", *(sources or Sources()).uv_args()]
    else:
        install = [python, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--no-compile"]
    commands: list[list[str]] = []
    if torch:
        torch_file = requirements_dir / "torch.txt"
        torch_file.write_text("".join(b.text for b in torch), encoding="utf-8")
        # Appended to the machine's sources (its indexes and find-links stay): the CPU build is
        # the only one the lock's hashes accept. Only torch's lookup ever sees this index.
        extra = ["--extra-index-url", TORCH_CPU_INDEX] if platform.startswith("linux") else []
        commands.append([*install, *extra, "-r", str(torch_file)])
    rest_file = requirements_dir / "rest.txt"
    rest_file.write_text("".join(b.text for b in rest), encoding="utf-8")
    commands.append([*install, "-r", str(rest_file)])
    if editable:
        # The project itself: its dependencies are the lock, its build backend (setuptools) too.
        project = ["--no-deps", "--no-build-isolation", "-e", str(ROOT)]
        if uv:
            commands.append([uv, "pip", "install", "--quiet", "--python", python, *project])
        else:
            commands.append([python, "-m", "pip", "install", "--quiet", *project])
    return commands


def bootstrap_uv(python: str, run: Runner) -> str | None:
    """uv into the venv from its own hash lock (`locks/installer.txt`); None where pip must do."""
    uv = Path(python).parent / "uv"
    pip = [python, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps", "--no-compile"]
    done = run([*pip, "-r", str(INSTALLER_LOCK)], check=False, capture_output=True, text=True)
    if done.returncode != 0 or not uv.exists():
        print(f"warning: uv unavailable ({done.stderr.strip()[-200:]}); installing with pip", file=sys.stderr)
        return None
    return str(uv)


def install(python: str, set_name: str, run: Runner = subprocess.run, platform: str = sys.platform) -> None:
    problems = check([set_name])
    for problem in problems:
        # Installing a stale lock still gives a working venv; `make lock-check` and the tests fail.
        print(f"warning: {problem}", file=sys.stderr)
    uv = bootstrap_uv(python, run)
    sources = pip_sources(python, run) if uv else None
    env = None
    if sources and sources.cert:
        # pip's configured CA bundle (a proxy's, a company's) for uv too.
        env = {**os.environ, "SSL_CERT_FILE": sources.cert}
    with tempfile.TemporaryDirectory() as tmp:
        commands = install_commands(
            python, lock_path(set_name), Path(tmp), platform=platform, uv=uv, sources=sources
        )
        for command in commands:
            first = without_extra_index(command)
            if first != command:
                # The machine's own sources first: where they hold the locked CPU wheel (a wheel
                # folder, a mirror, a cache) no other host is asked, and an unreachable extra
                # index costs nothing. The hashes decide either way.
                tried = run(first, check=False, capture_output=True, text=True, env=env)
                if tried.returncode == 0:
                    continue
                print(f"torch: not in the configured sources; adding {TORCH_CPU_INDEX}", file=sys.stderr)
            run(command, check=True, env=env)


def without_extra_index(command: list[str]) -> list[str]:
    """The command without the CPU index that install_commands appended (the machine's own stay)."""
    for at in range(len(command) - 1):
        if command[at : at + 2] == ["--extra-index-url", TORCH_CPU_INDEX]:
            return command[:at] + command[at + 2 :]
    return command


def platform_gaps(set_name: str, target: Target, run: Runner = subprocess.run) -> list[str]:
    """Why `locks/<set>.txt` cannot install on `target`; empty when pip finds a hashed wheel for every pin.

    pip itself decides, in hash-checking mode, from the machine's configured sources: a dry run
    for the target's platform tags installs nothing and downloads only what it must inspect.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--no-deps", "--require-hashes", "--target", tmp, *target.pip_args(),
            "-r", str(lock_path(set_name)),
        ]  # fmt: skip
        done = run(command, check=False, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR") or "==" in line]
    return [f"locks/{set_name}.txt on {target}: {line.strip()}" for line in errors[-8:]] or [
        f"locks/{set_name}.txt on {target}: pip exited {done.returncode}"
    ]


def single_platform_pins(set_name: str, sources: Sources) -> dict[str, str]:
    """{pin: the one platform} for pins whose every hash is a file of one platform in `sources`.

    Offline and partial by nature: only the machine's local sources (a wheel folder, file://
    indexes) can name a hash's file. A pin with a local version label (`2.13.0+cpu`) is a
    build no public index carries for other platforms, so it counts wherever it is found.
    """
    files = local_files(sources)
    found: dict[str, str] = {}
    for block in blocks(lock_path(set_name).read_text(encoding="utf-8")):
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block.text)
        pin = block.text.split()[0]
        named = [files[h] for h in hashes if h in files]
        platforms = {wheel_platform(n) for n in named}
        if hashes and len(named) == len(hashes) and len(platforms) == 1 and None not in platforms:
            found[pin] = str(platforms.pop())
        elif "+" in pin.split("==", 1)[1] and len(hashes) == 1:
            found[pin] = "one local build"
    return found


_ARCHES = ("x86_64", "aarch64", "arm64", "universal2", "amd64", "win32", "i686", "ppc64le", "s390x")


def wheel_platform(filename: str) -> str | None:
    """`cp311-cp311-linux_x86_64`-style platform of a wheel file name; None for a pure or sdist file."""
    if not filename.endswith(".whl"):
        return None
    python, abi, platform = filename[:-4].split("-")[-3:]
    if platform == "any":
        return None
    arch = next((a for a in _ARCHES if a in platform), platform)
    system = "linux" if "linux" in platform else platform.split("_")[0]
    return f"{python}-{abi}-{system}_{arch}"


def local_files(sources: Sources) -> dict[str, str]:
    """{sha256: file name} of the wheels in the local sources (wheel folders, file:// indexes)."""
    files: dict[str, str] = {}
    for link in sources.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            for wheel in folder.glob("*.whl"):
                files[hashlib.sha256(wheel.read_bytes()).hexdigest()] = wheel.name
    for url in (sources.index_url, *sources.extra_index_urls):
        if url and url.startswith("file://"):
            for page in Path(url.removeprefix("file://")).glob("*/index.html"):
                text = page.read_text(encoding="utf-8", errors="replace")
                for name, digest in re.findall(r'href="[^"#]*?([^/"#]+)#sha256=([0-9a-f]{64})"', text):
                    files[digest] = name
    return files


def local_platform_wheels(sources: Sources, target: Target) -> int:
    """How many wheels of `target`'s platform the machine's local sources hold."""
    tag = f"cp{target.python.replace('.', '')}"
    return sum(
        1
        for name in local_files(sources).values()
        if (p := wheel_platform(name)) and p.endswith(f"linux_{target.machine}") and (tag in p or "abi3" in p)
    )


def compile_locks(pip_compile: str, sets: Sequence[str] = tuple(SETS)) -> None:
    """`make lock`: the full set from the inputs, then every other set constrained to it."""
    digest = inputs_digest()
    order = [FULL_SET, *(s for s in sets if s != FULL_SET)]
    for name in order:
        out = lock_path(name)
        command = [
            pip_compile,
            "--quiet",
            "--generate-hashes",
            "--allow-unsafe",
            "--strip-extras",
            "--no-header",
            # The machine's own sources (pip config) must not end up in a file every fork uses.
            "--no-emit-index-url",
            "--no-emit-find-links",
            "-c",
            "constraints.txt",
            *([] if name == FULL_SET else ["-c", f"locks/{FULL_SET}.txt"]),
            *(arg for extra in SETS[name] for arg in ("--extra", extra)),
            "-o",
            f"locks/{name}.txt.new",
            "pyproject.toml",
        ]
        subprocess.run(command, check=True, cwd=ROOT)
        new = out.with_suffix(".txt.new")
        body = new.read_text(encoding="utf-8")
        header = (
            f"# inputs: {digest}\n"
            f"# Install set `{name}`: [project].dependencies + extras {list(SETS[name])}, with hashes.\n"
            "# Generated by `make lock` (infra/tools/lockfile.py) from pyproject.toml and constraints.txt.\n"
        )
        out.write_text(header + body, encoding="utf-8")
        new.unlink()
    _compile_installer(pip_compile, digest)


def _compile_installer(pip_compile: str, digest: str) -> None:
    command = [
        pip_compile,
        "--quiet",
        "--generate-hashes",
        "--strip-extras",
        "--no-header",
        "--no-emit-index-url",
        "--no-emit-find-links",
        "-c",
        "constraints.txt",
        "-o",
        "locks/installer.txt.new",
        "locks/installer.in",
    ]
    subprocess.run(command, check=True, cwd=ROOT)
    new = INSTALLER_LOCK.with_suffix(".txt.new")
    header = (
        f"# inputs: {digest}\n# The installer `make` bootstraps into each venv with pip (uv), with hashes.\n"
    )
    INSTALLER_LOCK.write_text(header + new.read_text(encoding="utf-8"), encoding="utf-8")
    new.unlink()


def platforms_report() -> int:
    """`make lock-platforms`: each portable set on each of its targets, with what the local sources hold."""
    sources = pip_sources(sys.executable, subprocess.run)
    problems: list[str] = []
    for name in PORTABLE_SETS:
        for target in targets(name):
            if target == DEVELOPER:
                continue
            gaps = platform_gaps(name, target)
            problems += gaps
            local = local_platform_wheels(sources, target)
            print(
                f"locks/{name}.txt on {target}: {'FAIL' if gaps else 'ok'}; this machine's local sources"
                f" hold {local} {target} wheels, pip took the others from its configured indexes (PyPI)"
            )
    print("\n".join(problems))
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="fail when a lock is stale")
    inst = sub.add_parser("install", help="install one set's lock into a venv")
    inst.add_argument("--python", required=True)
    inst.add_argument("--set", choices=sorted(SETS), default=FULL_SET)
    comp = sub.add_parser("compile", help="regenerate every lock (pip-compile)")
    comp.add_argument("--pip-compile", required=True)
    sub.add_parser("path", help="print a set's lock file").add_argument("set", choices=sorted(SETS))
    sub.add_parser("platforms", help="check each portable set installs on the Lambda platform (pip)")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check()
        print("\n".join(problems) or f"locks fresh: {', '.join(sorted(SETS))}")
        return 1 if problems else 0
    if args.command == "platforms":
        return platforms_report()
    if args.command == "install":
        install(args.python, args.set)
    elif args.command == "compile":
        compile_locks(args.pip_compile)
    else:
        print(lock_path(args.set).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
