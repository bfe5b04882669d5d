"""What `pip install` asks for. pyproject.toml holds version ranges (a library that pins exactly breaks the installs
around it); TensorFlow is an extra that fits the machine — `[cpu]`: tensorflow-cpu on x86_64, tensorflow elsewhere;
`[gpu]`: tensorflow[and-cuda] — and `[ray]` adds ray[data]; requirements.txt holds the exact tested pins that `make`
and CI install, each of which must lie inside pyproject's range.

Checked offline, on pyproject.toml and on the metadata setuptools builds from it (what pip reads for `.[gpu]`),
for three kinds of machine; and once against the package index: `pip install --dry-run '.[gpu]'` must resolve to
the GPU TensorFlow build with its CUDA libraries (about 30 s here, so it is marked slow).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
TENSORFLOW_NAMES = {"tensorflow", "tensorflow-cpu"}
TENSORFLOW_EXTRAS = ("cpu", "gpu")
RUNTIME_EXTRAS = ("cpu", "gpu", "ray")
MACHINES = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
    "linux-aarch64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
}


def pyproject_requirements() -> dict[str, list[Requirement]]:
    """pyproject.toml's requirements: '' → the dependencies, then one entry per extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = {"": [Requirement(line) for line in project["dependencies"]]}
    found.update({extra: [Requirement(line) for line in lines]
                  for extra, lines in project.get("optional-dependencies", {}).items()})
    return found


def requirements_txt() -> list[Requirement]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line.split(" #")[0].strip()) for line in lines if line.strip() and not line.startswith("#")]


def environment(machine: str, extra: str = "") -> dict[str, str]:
    env = dict(default_environment())
    env.update(MACHINES[machine], extra=extra)
    return env


def active(requirements: list[Requirement], machine: str, extra: str = "") -> list[Requirement]:
    """The requirements whose markers hold on that machine (with that extra requested)."""
    return [req for req in requirements if req.marker is None or req.marker.evaluate(environment(machine, extra))]


def key(req: Requirement) -> tuple[str, tuple[str, ...], str]:
    return canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier)


def tensorflow_in(requirements: list[Requirement]) -> list[Requirement]:
    return [req for req in requirements if canonicalize_name(req.name) in TENSORFLOW_NAMES]


def test_no_runtime_dependency_is_pinned_and_each_has_a_range():
    requirements = pyproject_requirements()
    runtime = requirements[""] + [req for extra in RUNTIME_EXTRAS for req in requirements[extra]]
    pinned = [str(req) for req in runtime if any(spec.operator in ("==", "===") for spec in req.specifier)]
    unbounded = [str(req) for req in runtime
                 if not any(spec.operator in (">=", ">", "~=") for spec in req.specifier)
                 or not any(spec.operator in ("<", "<=", "~=") for spec in req.specifier)]
    assert pinned == [], "pyproject.toml must give ranges; exact pins belong in requirements.txt"
    assert unbounded == [], "each runtime dependency needs a lower and an upper bound"


def test_tensorflow_comes_only_from_the_cpu_or_gpu_extra():
    requirements = pyproject_requirements()
    assert tensorflow_in(requirements[""]) == [], "a base install must not choose the TensorFlow build"
    assert tensorflow_in(requirements["ray"] + requirements["test"]) == []
    for machine in MACHINES:
        for extra in TENSORFLOW_EXTRAS:
            assert len(tensorflow_in(active(requirements[extra], machine, extra))) == 1, (machine, extra)


@pytest.mark.parametrize("machine", MACHINES)
def test_gpu_extra_asks_for_tensorflow_with_the_cuda_libraries(machine):
    (tensorflow,) = tensorflow_in(active(pyproject_requirements()["gpu"], machine, "gpu"))
    assert canonicalize_name(tensorflow.name) == "tensorflow"
    assert tensorflow.extras == {"and-cuda"}


@pytest.mark.parametrize(("machine", "build"), [("linux-x86_64", "tensorflow-cpu"), ("linux-aarch64", "tensorflow"),
                                                ("macos-arm64", "tensorflow")])
def test_cpu_extra_asks_for_the_cpu_build_on_x86_64_and_tensorflow_elsewhere(machine, build):
    (tensorflow,) = tensorflow_in(active(pyproject_requirements()["cpu"], machine, "cpu"))
    assert canonicalize_name(tensorflow.name) == build
    assert tensorflow.extras == set(), "the CPU install must not bring the CUDA libraries"


def test_cpu_and_gpu_extras_accept_the_same_tensorflow_versions():
    requirements = pyproject_requirements()
    ranges = {(machine, extra): tensorflow_in(active(requirements[extra], machine, extra))[0].specifier
              for machine in MACHINES for extra in TENSORFLOW_EXTRAS}
    assert len(set(ranges.values())) == 1, ranges


def test_ray_extra_asks_for_ray_data():
    (ray,) = pyproject_requirements()["ray"]
    assert (canonicalize_name(ray.name), ray.extras, ray.marker) == ("ray", {"data"}, None)


def test_requirements_txt_pins_exactly_what_a_cpu_install_needs():
    pins = requirements_txt()
    not_exact = [str(req) for req in pins
                 if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "=="]
    assert not_exact == [], "requirements.txt holds the tested versions, pinned with =="
    requirements = pyproject_requirements()
    for machine in MACHINES:
        wanted = {canonicalize_name(req.name) for req in active(requirements[""] + requirements["cpu"], machine, "cpu")}
        pinned = [canonicalize_name(req.name) for req in active(pins, machine)]
        assert sorted(pinned) == sorted(wanted), machine


@pytest.mark.parametrize("machine", MACHINES)
def test_tested_pins_lie_inside_pyproject_ranges(machine):
    requirements = pyproject_requirements()
    ranges = {canonicalize_name(req.name): req.specifier
              for extra in ("",) + TENSORFLOW_EXTRAS for req in active(requirements[extra], machine, extra)}
    outside = []
    for pin in active(requirements_txt(), machine):
        version = next(iter(pin.specifier)).version
        if not ranges[canonicalize_name(pin.name)].contains(version, prereleases=True):
            outside.append(f"{pin.name}=={version} not in {ranges[canonicalize_name(pin.name)]}")
    assert outside == []


def test_the_built_metadata_gives_pip_the_same_extras(tmp_path):
    """What pip reads for `.[gpu]`: the Requires-Dist lines setuptools writes from pyproject.toml."""
    pytest.importorskip("setuptools.build_meta", reason="setuptools (the build backend) is not installed here")
    script = "import sys, setuptools.build_meta as b; print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = done.stdout.strip().splitlines()[-1]
    metadata = Parser().parsestr((tmp_path / folder / "METADATA").read_text(encoding="utf-8"))
    built = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    assert set(metadata.get_all("Provides-Extra")) >= set(RUNTIME_EXTRAS)
    requirements = pyproject_requirements()
    for machine in MACHINES:
        base = {key(req) for req in active(built, machine)}
        assert base == {key(req) for req in active(requirements[""], machine)}, machine
        for extra in RUNTIME_EXTRAS:
            with_extra = {key(req) for req in active(built, machine, extra)} - base
            assert with_extra == {key(req) for req in active(requirements[extra], machine, extra)}, (machine, extra)
    (gpu_tensorflow,) = tensorflow_in([req for req in active(built, "linux-x86_64", "gpu")])
    assert (gpu_tensorflow.name, gpu_tensorflow.extras) == ("tensorflow", {"and-cuda"})


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                    reason="the CUDA wheels tensorflow[and-cuda] brings exist for Linux x86_64")
def test_pip_resolves_the_gpu_extra_to_the_gpu_tensorflow_build(tmp_path):
    """What a user on a GPU machine gets: pip's own resolution of `.[gpu]` against the index (nothing installed)."""
    report = tmp_path / "report.json"
    completed = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                                "--report", str(report), f"{REPO}[gpu]"], capture_output=True, text=True,
                               timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    names = {canonicalize_name(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}
    assert "tensorflow" in names and "tensorflow-cpu" not in names
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= names
