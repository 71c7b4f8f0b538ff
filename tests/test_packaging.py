"""The distribution installs under the ``novacron.*`` names, editable and as a wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import novacron.agent
import novacron.coordinator
import novacron.models
import novacron.protos

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"agent", "coordinator", "protos", "models"}


def test_editable_install_maps_folders_to_namespaced_packages() -> None:
    for module, folder in [
        (novacron.agent, "agent"),
        (novacron.coordinator, "coordinator"),
        (novacron.protos, "protos"),
        (novacron.models, "models"),
    ]:
        assert Path(module.__file__ or "").parent == REPO / folder


def test_bare_folder_names_are_not_installed() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    for name in TOP_LEVEL:
        assert not (site / name).exists(), f"a bare {name!r} package is installed"


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_clean_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("novacron_aiops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {
        "novacron",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "novacron/agent/collectors/base.py" in names
    assert not any(n.startswith("novacron/__init__") for n in names), (
        "novacron must stay a namespace"
    )

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            target,
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # Third-party dependencies come from this venv's site-packages through a plain path
    # entry: .pth files there (our editable finder among them) are not processed, so
    # novacron can only be imported from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    (Path(target) / "zz_deps.pth").write_text(deps + "\n")
    probe = (
        "import novacron.agent.cli, novacron.agent.collectors, novacron.coordinator.cli, "
        "novacron.protos, novacron.models, sys;"
        "print(novacron.agent.cli.__file__)"
    )
    out = subprocess.run(
        [str(python), "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    ).stdout
    assert out.strip().startswith(target), out
    scripts = Path(target) / "bin"
    version = subprocess.run(
        [str(python), str(scripts / "novacron-agent"), "--version"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    ).stdout
    assert version.startswith("novacron-agent ")


def test_agent_never_imports_scikit_learn() -> None:
    """The agent runs on every hypervisor: scikit-learn stays on the coordinator side."""
    probe = (
        "import sys, pkgutil, importlib, novacron.agent;"
        "[importlib.import_module(m.name) for m in "
        "pkgutil.walk_packages(novacron.agent.__path__, 'novacron.agent.')];"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'sklearn', 'skl2onnx'} "
        "or m.startswith('novacron.coordinator'));"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()
    assert out == "", f"novacron.agent pulled in: {out}"
