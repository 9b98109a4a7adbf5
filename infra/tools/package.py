"""`make package`: build the Lambda artifact from `service/` for the Lambda runtime's platform.

- Dependencies are exactly `locks/runtime.txt` (issue 17: "the Lambda artifact is built from
  the same lock"): `[project].dependencies` of pyproject.toml (no torch, no `local` extra),
  pinned with the sha256 of every file by `make lock`, installed in pip's hash-checking mode.
  The lock's hashes cover every file of each release on PyPI, so the same lock installs the
  manylinux wheels of the Lambda platform (tests/workflows/test_lock_platforms.py checks it).
- Wheels only, for manylinux on the target architecture and CPython version of the
  configured runtime (Lambda's Python 3.12+ runtimes run on Amazon Linux 2023, glibc 2.34,
  https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
- The zip is reproducible: sorted entries, fixed timestamps and permissions, no bytecode.
The runtime and architecture come from the stack config, which must agree across stacks
because one artifact is deployed to all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import yaml

from service.contract import PROJECT, PULUMI_YAML

# Not imported from infra.tools.offline: CI reads the platform (`--github-output`) before
# anything but PyYAML is installed, and offline imports Pulumi.
ROOT = Path(__file__).resolve().parents[2]
# locks/runtime.txt (infra/tools/lockfile.py RUNTIME_LOCK; not imported: see above).
LOCK = ROOT / "locks" / "runtime.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
OUT_DIR = ROOT / "build" / "lambda"
FORBIDDEN = ("torch", "nvidia", "sentence_transformers", "triton")
# Locked but not shipped, to stay under the 30 MB target:
# - the AWS SDK is part of every Lambda Python runtime
#   (https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html); shipping our own
#   would pin it, at ~9 MB zipped;
# - gRPC and protobuf come with opensearch-protobufs for opensearch-py's optional gRPC
#   transport; the service talks HTTP with SigV4 and never imports them (~8 MB zipped).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
EXCLUDED = RUNTIME_PROVIDED | {"grpcio", "protobuf", "opensearch-protobufs"}
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Bumped when the way a zip is made changes, so older builds are redone.
BUILD_FORMAT = 4
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.pyo$)")


def target_platform() -> tuple[str, str, str]:
    """(runtime, architecture, artifact path) shared by every stack file."""
    seen: set[tuple[str, str, str]] = set()
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config", {})
        seen.add(
            (
                config[f"{PROJECT}:lambdaRuntime"],
                config[f"{PROJECT}:lambdaArchitecture"],
                config[f"{PROJECT}:artifactPath"],
            )
        )
    if len(seen) != 1:
        raise SystemExit(f"stacks disagree on lambdaRuntime/lambdaArchitecture/artifactPath: {sorted(seen)}")
    return seen.pop()


# GitHub-hosted runners of each Lambda architecture
# (https://docs.github.com/en/actions/using-github-hosted-runners/about-github-hosted-runners).
RUNNERS = {"arm64": "ubuntu-24.04-arm", "x86_64": "ubuntu-24.04"}


def github_outputs() -> dict[str, str]:
    """What CI's build job is chosen by: the runner of the architecture, and the runtime's Python."""
    runtime, arch, artifact_path = target_platform()
    return {
        "runner": RUNNERS[arch],
        "python-version": runtime.removeprefix("python"),
        "architecture": arch,
        "artifact": artifact_path,
    }


def pip_platform_args(runtime: str, arch: str) -> list[str]:
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[arch]
    version = runtime.removeprefix("python")
    tags = [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}", f"manylinux_2_34_{machine}"]
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", version]
    for tag in tags:
        args += ["--platform", tag]
    return args


def dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps: list[str] = project["dependencies"]
    return deps


def lock_blocks() -> dict[str, str]:
    """{name==version: its lock lines (the pin and its hashes)} of locks/runtime.txt."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in LOCK.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = blocks.setdefault(f"{match.group(1).lower()}=={match.group(2)}", [])
        if current is not None and not line.lstrip().startswith("#"):
            current.append(line)
    return {pin: "\n".join(lines) + "\n" for pin, lines in blocks.items()}


def resolve_lock(runtime: str, arch: str) -> list[str]:
    """The pinned requirements of the artifact: locks/runtime.txt, for every platform.

    `runtime` and `arch` are kept for callers: the lock is the same for all of them (one set of
    versions), only the wheels pip picks from its hashes differ.
    """
    del runtime, arch
    pins = sorted(lock_blocks())
    bad = [p for p in pins if p.split("==")[0].replace("-", "_") in FORBIDDEN]
    if bad:
        raise SystemExit(f"runtime dependencies pull in {bad}; the Lambda artifact must not")
    return pins


def shipped(pins: list[str]) -> list[str]:
    return [p for p in pins if p.split("==")[0].lower() not in EXCLUDED]


def install(pins: list[str], runtime: str, arch: str, target: Path) -> None:
    _pip_target(shipped(pins), runtime, arch, target)
    # Console scripts carry the build machine's interpreter path; Lambda never runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)


def runtime_sdk(runtime: str, arch: str) -> Path:
    """The AWS SDK the Lambda runtime provides (and the artifact leaves out), for a local smoke.

    Installed at the locked versions into its own folder, which the smoke puts on the path
    after the task root, as the runtime does with its own copy. The base-image run in CI
    uses the SDK the real runtime ships.
    """
    pins = [p for p in resolve_lock(*target_platform()[:2]) if p.split("==")[0].lower() in RUNTIME_PROVIDED]
    folder = OUT_DIR / "runtime-sdk" / f"{runtime}-{arch}"
    stamp = folder / f".installed-{hashlib.sha256(json.dumps(pins).encode()).hexdigest()[:16]}"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        _pip_target(pins, runtime, arch, folder)
        shutil.rmtree(folder / "bin", ignore_errors=True)
        stamp.touch()
    return folder


def _pip_target(requirements: list[str], runtime: str, arch: str, target: Path) -> None:
    """pip in hash-checking mode: each pin with the hashes locks/runtime.txt gives it."""
    locked = lock_blocks()
    with tempfile.TemporaryDirectory() as tmp:
        hashed = Path(tmp) / "requirements.txt"
        hashed.write_text("".join(locked[p] for p in requirements))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-compile",
                "--require-hashes",
                "--target",
                str(target),
                *pip_platform_args(runtime, arch),
                "-r",
                str(hashed),
            ],
            check=True,
        )


def _service_files() -> list[Path]:
    """service/, and Pulumi.yaml beside it: service/contract.py reads the project name from there."""
    code = [p for p in sorted((ROOT / "service").rglob("*")) if p.is_file() and not _SKIP.search(str(p))]
    return [PULUMI_YAML, *code]


def inputs_fingerprint(pins: list[str], runtime: str, arch: str) -> str:
    """Changes when anything the zip is built from changes: the pins, the platform, the service code."""
    digest = hashlib.sha256(json.dumps([pins, runtime, arch, BUILD_FORMAT]).encode())
    for path in _service_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def is_current(zip_path: Path, platform: tuple[str, str]) -> bool:
    """True when `zip_path` was built from exactly the present inputs for `platform`."""
    manifest = zip_path.with_suffix(".manifest.json")
    if not (zip_path.exists() and manifest.exists()):
        return False
    pins = resolve_lock(*target_platform()[:2])
    return bool(json.loads(manifest.read_text()).get("inputs") == inputs_fingerprint(pins, *platform))


def copy_service(target: Path) -> None:
    for path in _service_files():
        dest = target / path.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def write_zip(source: Path, zip_path: Path) -> None:
    """Byte-identical output for identical input trees."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.rglob("*") if p.is_file() and not _SKIP.search(str(p)))
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), _EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)


def display_path(path: Path) -> str:
    """`path` relative to the repository when inside it (the same manifest on every checkout).

    Else absolute: `--out /tmp/x.zip` lies outside, and must not crash the build it just wrote.
    """
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def build(zip_path: Path, platform: tuple[str, str] | None = None) -> dict[str, Any]:
    """The artifact for the stacks' runtime and architecture, or for `platform` (runtime, arch).

    Another platform (the smoke's host build) gets the same locked versions, only other wheels.
    No bytecode: it would save little of a cold start's imports (infra.tools.importtime) and
    take the zip past its 30 MB target.
    """
    target_runtime, target_arch, _ = target_platform()
    pins = resolve_lock(target_runtime, target_arch)
    runtime, arch = platform or (target_runtime, target_arch)
    with tempfile.TemporaryDirectory(prefix="rag-platform-lambda-") as tmp:
        staging = Path(tmp)
        install(pins, runtime, arch, staging)
        leaked = [name for name in FORBIDDEN if (staging / name).exists()]
        if leaked:
            raise SystemExit(f"artifact would contain {leaked}")
        copy_service(staging)
        unzipped = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        write_zip(staging, zip_path)
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    manifest = {
        "artifact": display_path(zip_path),
        "sha256": digest,
        "runtime": runtime,
        "architecture": arch,
        "zipBytes": zip_path.stat().st_size,
        "unzippedBytes": unzipped,
        "packages": len(shipped(pins)),
        "inputs": inputs_fingerprint(pins, runtime, arch),
        "excluded": sorted(EXCLUDED),
    }
    zip_path.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="zip path (default: the stacks' artifactPath)")
    parser.add_argument(
        "--github-output", type=Path, help="only append the target platform to this file ($GITHUB_OUTPUT)"
    )
    args = parser.parse_args(argv)
    if args.github_output:
        with args.github_output.open("a") as sink:
            sink.writelines(f"{key}={value}\n" for key, value in github_outputs().items())
        return 0
    zip_path = Path(args.out) if args.out else ROOT / target_platform()[2]
    manifest = build(zip_path.resolve())
    mb = manifest["zipBytes"] / 1_000_000
    print(json.dumps(manifest, indent=2))
    print(
        f"package: {mb:.1f} MB zipped ({manifest['unzippedBytes'] / 1_000_000:.1f} MB unzipped, "
        f"target <= 30 MB zipped, Lambda limit 250 MB unzipped)"
    )
    return 0 if mb <= 30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
