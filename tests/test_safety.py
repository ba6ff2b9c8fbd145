"""A sweep folder is safe to share and hard to corrupt: nothing in it runs code, faults end in one
line and keep what was finished, and any override makes a valid job folder."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import runner.store as store
from runner import load_runs, run
from runner.config import factory_types
from runner.store import WriteError, WriteInterrupted, atomic_write, job_dir, remove_stale_temps, temp_name

REPO = Path(__file__).resolve().parent.parent
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def python(*args: str, cwd: Path, pythonpath: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), pythonpath]))}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def cli_with(patch: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m runner ARGS`` with ``patch`` (Python) run first: a fault injected into the writers."""
    script = f"import sys\n{textwrap.dedent(patch)}\nimport runner.app\nsys.argv = ['runner', *sys.argv[1:]]\n"
    script += "runner.app.cli()\n"
    return python("-c", script, *args, cwd=cwd)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
    assert len(lines) == 1, text
    return lines[0]


# ----------------------------------------------------------------------------- 1. nothing in a folder runs code


def _plant(summary_path: Path, objective: dict) -> None:
    summary = json.loads(summary_path.read_text())
    summary["config"]["objective"] = objective
    summary_path.write_text(json.dumps(summary))


def test_a_planted_target_in_a_run_folder_is_refused_by_name_and_nothing_runs(compose_cfg, tmp_path):
    folder = tmp_path / "run"
    run(compose_cfg("objective=quartic", "objective.x0=[1.0]", "max_iter=20"), folder)
    pwned = tmp_path / "PWNED"
    _plant(folder / "summary.json", {"_target_": "os.system", "command": f"touch {pwned}"})
    done = python("-m", "runner.plot", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("figures: objective_1d not drawn (UntrustedConfig: ")
    assert f"{folder / 'summary.json'}: objective._target_=os.system: expected an objective of the registry" in line
    assert not pwned.exists()
    assert (folder / "figures" / "convergence_iteration.png").is_file()  # the other figures still come out
    assert not (folder / "figures" / "objective_1d.png").exists()


def test_a_planted_target_in_a_batched_chunk_is_refused_naming_the_runs_table(tmp_path):
    sweep = tmp_path / "s"
    args = ["-m", "runner", "-m", "hydra/launcher=batched", "lr=0.01,0.02", "optimizer=momentum", "max_iter=30"]
    done = python(*args, "objective.x0=[1.0,2.0]", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pwned = tmp_path / "PWNED"
    for path in [*sweep.glob("parts/*.runs.parquet"), sweep / "runs.parquet"]:
        table = pq.read_table(path)
        configs = []
        for text in table["config"].to_pylist():
            config = json.loads(text)
            config["objective"] = {"_target_": "os.system", "command": f"touch {pwned}"}
            configs.append(json.dumps(config))
        table = table.set_column(table.schema.get_field_index("config"), "config", pa.array(configs))
        pq.write_table(table, path)
    done = python("-m", "runner.plot", str(sweep), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("figures: paths not drawn (UntrustedConfig: ")
    assert f"{sweep / 'runs.parquet'}: objective._target_=os.system" in line
    assert not pwned.exists()
    assert (sweep / "figures" / "convergence_iteration.png").is_file()


def test_reading_a_folder_imports_no_module_it_names(compose_cfg, tmp_path):
    """A downloaded folder may hold its own module beside a summary naming it, and ``python -m`` puts
    the working folder on sys.path: loading and drawing from inside it must not import it."""
    folder = tmp_path / "run"
    run(compose_cfg("objective=quartic", "objective.x0=[1.0]", "max_iter=20"), folder)
    pwned = tmp_path / "PWNED"
    (folder / "planted_module.py").write_text(f"import pathlib\npathlib.Path({str(pwned)!r}).touch()\n")
    _plant(folder / "summary.json", {"_target_": "planted_module.f", "x0": [1.0]})
    loaded = python("-c", "import runner; print(runner.load_runs('.')['objective'][0])", cwd=folder)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "f"
    drawn = python("-m", "runner.plot", ".", cwd=folder)
    assert drawn.returncode == 0, drawn.stderr
    assert "objective._target_=planted_module.f" in drawn.stderr
    assert not pwned.exists()


def test_column_types_come_from_the_projects_factories_but_never_import_a_named_module(tmp_path, monkeypatch):
    (tmp_path / "named_here.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert factory_types("named_here.f") == {}
    assert "named_here" not in sys.modules
    # The project's own factories still type their columns (x0 is list<double> by its annotation).
    assert str(factory_types("objectives.sin_cos")["x0"]) == "list<item: double>"


def test_a_config_dir_of_the_user_adds_its_objectives_to_the_figures(tmp_path):
    (tmp_path / "userobj.py").write_text(
        "from objectives import shifted_quadratic\n\ndef bowl(a=2.0, b=-3.0, x0=None):\n"
        "    return shifted_quadratic(a=a, b=b, x0=x0)\n"
    )
    conf = tmp_path / "myconf"
    (conf / "objective").mkdir(parents=True)
    (conf / "objective" / "bowl.yaml").write_text("_target_: userobj.bowl\na: 2.0\nb: -3.0\nx0: [8.0, 9.0]\n")
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "--config-dir", str(conf), "objective=bowl", f"hydra.run.dir={folder}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plot = [sys.executable, "-m", "runner.plot", str(folder)]
    refused = subprocess.run(plot, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "paths not drawn (UntrustedConfig" in refused.stderr and "objective._target_=userobj.bowl" in refused.stderr
    assert not (folder / "figures" / "paths.png").exists()
    trusted = subprocess.run(
        [*plot, "--config-dir", str(conf)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert trusted.returncode == 0 and trusted.stderr == "", trusted.stderr
    assert (folder / "figures" / "paths.png").is_file()
    bad = python("-m", "runner.plot", str(folder), "--config-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().endswith(
        f"--config-dir={tmp_path / 'nowhere'}: expected a config folder with an objective/ group"
    )


# ----------------------------------------------------------------------------- 5. faults: one line, nothing lost


def test_a_failing_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def disk_full(tmp):
        Path(tmp).write_text("half")
        raise ENOSPC

    with pytest.raises(WriteError) as caught:
        atomic_write(target, disk_full)
    assert str(caught.value) == f"{target} could not be written (No space left on device)"
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_ctrl_c_inside_a_write_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "trace.parquet"
    target.write_text("old")

    def interrupted(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        atomic_write(target, interrupted)
    assert isinstance(caught.value, WriteInterrupted)
    assert str(caught.value) == f"{target} was not written (interrupted while writing it)"
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.parquet"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_files_are_removed_and_live_writers_kept(tmp_path):
    (tmp_path / "parts").mkdir()
    dead = temp_name(tmp_path / "parts" / "a.traces.parquet", _dead_pid())
    mine = temp_name(tmp_path / "runs.parquet")
    live = temp_name(tmp_path / "traces.parquet", os.getppid())  # a live process, writing now
    reused = temp_name(tmp_path / "summary.json", os.getppid())  # a live pid, but the file predates its process
    other = tmp_path / ".notes.tmp"  # not a name atomic_write gives
    for path in (dead, mine, live, reused, other):
        path.write_text("x")
    os.utime(reused, (1, 1))
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert mine.exists() and live.exists() and other.exists()


def test_a_sweep_removes_what_a_killed_write_left(compose_cfg, tmp_path):
    from runner.app import finish_sweep

    run(compose_cfg("max_iter=5"), tmp_path / "lr=0.01")
    left = temp_name(tmp_path / "traces.parquet", _dead_pid())
    left.write_bytes(b"\0" * 1000)
    finish_sweep(tmp_path, figures=False)
    assert not left.exists()
    assert (tmp_path / "traces.parquet").is_file()


def test_a_run_removes_what_a_killed_write_left_in_its_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    left = temp_name(out / "trace.parquet", _dead_pid())
    left.write_bytes(b"\0" * 1000)
    done = python("-m", "runner", "max_iter=3", f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not left.exists() and (out / "trace.parquet").is_file()


def test_summary_json_on_a_full_disk_is_one_line_and_a_failed_exit(tmp_path):
    patch = """
    import errno, os, pathlib
    real = pathlib.Path.write_text
    def write_text(self, *args, **kwargs):
        if "summary.json" in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)
    pathlib.Path.write_text = write_text
    """
    out = tmp_path / "run"
    done = cli_with(patch, "max_iter=5", f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 1
    assert one_line(done.stderr) == f"error: {out / 'summary.json'} could not be written (No space left on device)"
    assert (out / "trace.parquet").is_file() and not list(out.glob(".*.tmp"))


def test_a_second_ctrl_c_while_the_trace_is_written_is_one_line(tmp_path):
    patch = """
    import pyarrow.parquet as pq
    def write_table(*args, **kwargs):
        raise KeyboardInterrupt
    pq.write_table = write_table
    """
    out = tmp_path / "run"
    done = cli_with(patch, "max_iter=5", f"hydra.run.dir={out}", cwd=tmp_path)
    assert done.returncode == 130
    line = one_line(done.stderr)
    assert line == f"interrupted: {out / 'trace.parquet'} was not written (interrupted while writing it)"
    assert not list(out.glob(".*.tmp"))


def test_a_failing_chunk_write_is_one_line_and_keeps_the_chunks_before_it(tmp_path):
    patch = """
    import errno, os
    import runner.batched
    real, calls = runner.batched.write_part, []
    def write_part(sweep_dir, name, runs, traces, threads=1):
        calls.append(name)
        if len(calls) == 2:
            from runner.store import WriteError
            full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise WriteError(sweep_dir / "parts" / f"{name}.traces.parquet", full)
        real(sweep_dir, name, runs, traces, threads)
    runner.batched.write_part = write_part
    """
    sweep = tmp_path / "s"
    args = ["-m", "hydra/launcher=batched", "hydra.launcher.chunk_size=1", "lr=0.01,0.02,0.03", "max_iter=20"]
    args.append("hydra.callbacks.progress.show=false")  # stderr: the error alone, without a line per chunk
    done = cli_with(patch, *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith(f"error: {sweep / 'parts'}/jobs000000-") and line.endswith(
        f".traces.parquet could not be written (No space left on device); the runs so far are in {sweep / 'parts'}"
    )
    runs = load_runs(sweep)  # the chunk finished before the failure is still there, and loadable
    assert len(runs) == 1 and runs["lr"].tolist() == [0.01] and runs["status"].tolist() == ["max_iter"]


def test_a_write_error_of_the_tables_is_one_line_and_a_failed_exit(compose_cfg, tmp_path, monkeypatch, capsys):
    from omegaconf import OmegaConf

    import runner.tables
    from runner.app import SweepEnd

    for lr in (0.01, 0.02):
        run(compose_cfg(f"lr={lr}", "max_iter=5"), tmp_path / f"lr={lr}")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path), "subdir": "x"}}})

    def disk_full(path, *args, **kwargs):
        atomic_write(path, lambda tmp: (_ for _ in ()).throw(ENOSPC))

    monkeypatch.setattr(runner.tables, "write_row_groups", disk_full)
    monkeypatch.setattr(runner.tables, "join_parquet", lambda sources, path: disk_full(path))
    with pytest.raises(SystemExit) as exited:
        SweepEnd(figures=False).on_multirun_end(config)
    assert exited.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'traces.parquet'} could not be written (No space left on device)" in line
    assert len(load_runs(tmp_path)) == 2  # the runs are still loadable from their folders

    def ctrl_c(path, *args, **kwargs):
        atomic_write(path, lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt))

    monkeypatch.setattr(runner.tables, "write_row_groups", ctrl_c)
    with pytest.raises(SystemExit) as exited:
        SweepEnd(figures=False).on_multirun_end(config)
    assert exited.value.code == 130
    assert one_line(capsys.readouterr().err) == (
        f"interrupted: {tmp_path / 'traces.parquet'} was not written (interrupted while writing it); "
        f"its runs are in {tmp_path}"
    )


def test_a_figure_that_cannot_be_written_is_one_line(compose_cfg, tmp_path, monkeypatch, capsys):
    import runner.figures

    run(compose_cfg("max_iter=5"), tmp_path / "run")
    monkeypatch.setattr(
        runner.figures,
        "atomic_write",
        lambda path, write: atomic_write(path, lambda tmp: (_ for _ in ()).throw(ENOSPC)),
    )
    assert runner.figures.main([str(tmp_path / "run")]) == 1
    assert one_line(capsys.readouterr().err).endswith("could not be written (No space left on device)")


# ----------------------------------------------------------------------------- 6. any override makes a valid folder


def test_a_safe_override_dirname_is_the_job_folder():
    for name in ("", "lr=0.1", "lr=0.1/optimizer=momentum/seed=0", "objective.x0=[1.0,2.0]"):
        assert job_dir(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "objective.x0=[" + ",".join(["0.123456"] * 50) + "]",  # one component past 255 bytes
        "/".join(f"k{i}=" + "v" * 20 for i in range(12)),  # each part short, the whole past 200 characters
        "lr=0.1/+note=../..",  # a value holding a path
        "+note=/etc",  # a leading /
        "+note=a\\b",
        "lr=0.1/+note=x/.hidden=1",
    ],
)
def test_an_unsafe_or_long_override_dirname_becomes_one_short_component_with_a_hash(name):
    folder = job_dir(name)
    assert folder != name and "/" not in folder and "\\" not in folder and not folder.startswith(".")
    assert len(folder.encode()) <= store.NAME_MAX_BYTES and len(folder) <= store.JOB_NAME_MAX
    assert folder == job_dir(name)  # the same overrides, the same folder
    assert job_dir(name + "0") != folder  # other overrides, another folder
    assert folder.split("=")[0] == name.split("=")[0].split("/")[0]  # readable: it starts with the first key


def test_a_50d_x0_sweep_runs_under_both_launchers_with_the_same_job_names(tmp_path):
    values = [",".join(f"{0.1 + 0.005 * i + k:.6f}" for i in range(50)) for k in (0, 0.5)]  # within the bounds
    sweep = f"objective.x0=[{values[0]}],[{values[1]}]"
    jobs = {}
    for launcher in ("basic", "batched"):
        where = tmp_path / launcher
        done = python(
            "-m", "runner", "-m", "objective=sin_cos", sweep, "max_iter=10", f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={where}", "hydra.callbacks.sweep_end.figures=false", cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs = load_runs(where)
        assert len(runs) == 2 and set(runs["status"]) == {"max_iter"}
        jobs[launcher] = sorted(runs["job"])
    assert jobs["basic"] == jobs["batched"]
    assert all(
        len(name.encode()) <= 255 and re.fullmatch(r".*objective\.x0=\[0\.[16],.*-[0-9a-f]{8}", name)
        for name in jobs["basic"]
    )
    assert all((tmp_path / "basic" / name / "summary.json").is_file() for name in jobs["basic"])


@pytest.mark.parametrize("launcher", ["basic", "batched"])
@pytest.mark.parametrize("subdir", ["../..", "absolute"])
def test_a_job_folder_outside_the_sweep_folder_is_refused_before_any_job_runs(tmp_path, launcher, subdir):
    sweep = tmp_path / "a" / "b"
    subdir = str(tmp_path / "elsewhere") if subdir == "absolute" else subdir
    done = python(
        "-m", "runner", "-m", "lr=0.1,0.2", "max_iter=5", f"hydra.sweep.subdir={subdir}",
        f"hydra.sweep.dir={sweep}", f"hydra/launcher={launcher}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: hydra.sweep.subdir={subdir}: expected a folder inside the sweep folder (a relative path without ..)"
    )
    assert not list(tmp_path.rglob("summary.json")) and not (tmp_path / "elsewhere").exists()
