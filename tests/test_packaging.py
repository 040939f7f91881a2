"""A wheel built from the repository installs into a clean venv and works without the lessons."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("llmcourse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "llmcourse/py.typed" in names
    # lesson 04 reads the committed ablation-ladder table from the installed package
    assert "llmcourse/train/results/ladder.json" in names
    assert "llmcourse/train/results/rl_arithmetic.json" in names  # lesson 09 loads it
    assert "llmcourse/capstone/results/small/report.json" in names  # lesson 11 loads it
    assert "llmcourse/serve/static/chat.html" in names  # serve's page at /
    assert "llmcourse/eval/results/lm_eval_course_benchmark.json" in names  # and lesson 10b
    assert not [n for n in names if n.startswith(("lessons/", "tests/", "solutions/"))]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # The torch already installed here (pinned by the bootstrap), then the wheel with its deps.
    import torch

    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"  # no lessons/, no source tree on the path
    elsewhere.mkdir()
    probe = (
        "import llmcourse, llmcourse.config, llmcourse.utils, llmcourse.pretrained, pathlib;"
        "print(pathlib.Path(llmcourse.__file__).parent);"
        "print(llmcourse.utils.paths.repo_root())"
    )
    result = subprocess.run(
        [str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, check=True
    )
    package_dir, root = result.stdout.split()
    assert Path(package_dir).is_relative_to(env_dir), "imported from the venv, not the checkout"
    assert root == "None"
    script = python.parent / ("llmcourse.exe" if sys.platform == "win32" else "llmcourse")
    version = subprocess.run(
        [str(script), "--version"], cwd=elsewhere, capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("llmcourse ")
