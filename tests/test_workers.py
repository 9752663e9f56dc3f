"""Several workers on one study: `mcusearch run` processes at once against one PostgreSQL storage.

A throwaway PostgreSQL server (initdb into a temp folder, unix socket only, no TCP) is started once
for the module and always stopped. As root it runs as the existing `postgres` system user (the
server refuses root); the tests create no users and install nothing.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_HINT = "Debian: `apt-get install postgresql-15` (server binaries and the `postgres` system user)"


# --- a throwaway PostgreSQL server --------------------------------------------------------------

def _pg_bindir() -> Path:
    """The folder of initdb/pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else the PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    for tool in ("pg_ctl", "initdb"):
        found = shutil.which(tool)
        if found:
            return Path(found).resolve().parent
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {DEBIAN_HINT}")


class PostgresServer:
    """A server listening only on a unix socket in a private temp folder."""

    def __init__(self, bindir: Path, root: Path, as_user: str | None):
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.data = root / "data"
        self.socket_dir = root          # short path: unix socket paths are limited to ~107 bytes
        self.log = root / "server.log"

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self.as_user, "--", *cmd] if self.as_user else cmd

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        r = subprocess.run(self._cmd(tool, *args), capture_output=True, text=True, timeout=timeout,
                           cwd=self.root)
        if r.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        # listen_addresses='' : no TCP at all; -k: the socket in our folder, not /var/run/postgresql.
        opts = (f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=50")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts)

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").is_file():
            return
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
        except (RuntimeError, subprocess.TimeoutExpired):
            try:  # the server we started: its pid is the first line of its own pid file
                os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), 9)
            except (OSError, ValueError, IndexError):
                pass

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def new_database(self, prefix: str = "db") -> str:
        """A fresh, empty database; its Optuna storage URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="module")
def postgres():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (psycopg[binary]) is not installed")
    bindir = _pg_bindir()
    as_user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: use the existing system user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and there is no `postgres` system user to run the test "
                        f"server as (the tests create none); {DEBIAN_HINT}, or run the tests as "
                        "a non-root user")
        if shutil.which("runuser") is None:
            pytest.fail("running as root without `runuser` (util-linux) to start the server as `postgres`")
        as_user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="mcus-pg-"))  # in /tmp: the postgres user can reach it
    if as_user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = PostgresServer(bindir, root, as_user)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- specs and workers ----------------------------------------------------------------------------

def _tiny_spec(tmp_path: Path, cache_dir: Path, storage: str, **search) -> Path:
    data = yaml.safe_load((ROOT / "search.yaml").read_text())
    data["model"]["train"]["epochs"] = 1
    data["model"]["retrain_epochs"] = 0
    data["model"]["representative_samples"] = 50
    data["dataset"].update(max_train=600, max_test=200, probe_per_class=1)
    data["knobs"] = {"channels": {"per": "global", "values": [4, 8]},
                     "quantization": ["float32", "int8"], "opt_level": ["-O2"], "converter": ["mcusearch"]}
    data["constraints"]["accuracy_min"] = None
    data["search"] = {"sampler": "random", "n_trials": 4, "seed": 1, "run_dir": "run",
                      "cache_dir": str(cache_dir), "storage": storage, **search}
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _worker(spec: Path, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mcusearch", "run", str(spec), "--no-progress", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


STARTED = re.compile(r"mcusearch\.study: trial (\d+): ")  # logged by each worker for each trial it runs


# --- tests ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_share_one_postgres_study(tmp_path, postgres):
    """`mcusearch run` twice at the same moment on one storage: together they run the study's total."""
    storage = postgres.new_database("workers")
    cache_dir = tmp_path / "model-cache"
    spec = _tiny_spec(tmp_path, cache_dir, storage, n_trials=4)

    # Pre-warm: one worker alone trains the base model into the shared cache and runs trial 0, so
    # the two workers below do not both wait on the base model (the cache's file lock would make
    # the second wait, not train it again, but the test would take longer).
    code, out, err = _finish(_worker(spec, "--n-trials", "1", cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert len(optuna.load_study(study_name="mcusearch", storage=storage).trials) == 1

    workers = [_worker(spec, cwd=tmp_path) for _ in range(2)]
    results = [_finish(w) for w in workers]
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "Pareto-optimal configurations" in out

    study = optuna.load_study(study_name="mcusearch", storage=storage)
    trials = study.trials
    numbers = [t.number for t in trials]
    # MaxTrialsCallback(4, states=None) runs in each worker after each of its trials and counts every
    # trial in the study, running ones included; a worker that sees fewer than 4 starts one more.
    # Two workers can both see 3 at the same moment, so the documented bound is 4 + (workers - 1).
    assert 4 <= len(trials) <= 4 + len(workers) - 1, numbers
    assert sorted(numbers) == list(range(len(trials)))  # unique, no gaps
    assert all(t.state.is_finished() for t in trials), [(t.number, t.state) for t in trials]
    for t in trials:
        assert t.state == optuna.trial.TrialState.COMPLETE, (t.number, t.user_attrs.get("error"))
        figs = t.user_attrs["figures"]
        assert figs["instructions"]["provenance"] == "emulated" and figs["instructions"]["value"] > 0
        assert 0 < figs["model_flash_kb"]["value"] < figs["flash_kb"]["value"]
        assert 0.0 < figs["accuracy"]["value"] <= 1.0
        assert len(t.values) == 4
        if "reused_from" not in t.user_attrs:
            assert (tmp_path / "run" / t.user_attrs["artifacts"]["elf"]).is_file()

    # Both workers ran trials, no trial twice: each logs the number of every trial it starts.
    ran = [{int(n) for n in STARTED.findall(err)} for _, _, err in results]
    assert all(ran), f"a worker ran no trial: {ran}"
    assert not ran[0] & ran[1], ran
    assert ran[0] | ran[1] == set(numbers) - {0}, (ran, numbers)
    # ... and at the same time: each worker's first trial started before the other's last one ended.
    by_number = {t.number: t for t in trials}
    first = [min(by_number[n].datetime_start for n in r) for r in ran]
    last = [max(by_number[n].datetime_complete for n in r) for r in ran]
    assert first[0] < last[1] and first[1] < last[0], (first, last)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_workers_opening_a_new_study_at_once(tmp_path, backend, request):
    """Workers started together on a new storage all open the study (none dies creating the schema).

    Optuna's RDBStorage creates its tables (and PostgreSQL enum types) with check-then-create: two
    processes doing it at once make one fail ("pg_type_typname_nsp_index" unique violation on
    PostgreSQL; "table ... already exists" or a unique alembic_version on SQLite, the default)."""
    if backend == "postgres":
        server = request.getfixturevalue("postgres")
        urls = [server.new_database("fresh") for _ in range(3)]
    else:
        urls = [None] * 3  # the default: sqlite:///<run_dir>/study.db, a new file per round
    specs = []
    for i, url in enumerate(urls):
        (tmp_path / str(i)).mkdir()
        specs.append(str(_tiny_spec(tmp_path / str(i), tmp_path / "cache", url)))
    script = textwrap.dedent("""
        import sys, time
        from mcusearch.spec import load_spec
        from mcusearch.study import open_study
        start, paths = float(sys.argv[1]), sys.argv[2:]
        specs = [load_spec(p) for p in paths]
        for i, spec in enumerate(specs):      # round i starts at the same instant in every process
            while time.time() < start + 2 * i:
                time.sleep(0.0005)
            study = open_study(spec)
            print(study.study_name, study.user_attrs["objectives"][0][0], flush=True)
    """)
    start = time.time() + 4  # after every process has imported mcusearch
    procs = [subprocess.Popen([sys.executable, "-c", script, str(start), *specs], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [_finish(p, timeout=120) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-2500:]
        assert out.split() == ["mcusearch", "model_flash_kb"] * len(urls), out
    for i, url in enumerate(urls):
        url = url or f"sqlite:///{tmp_path / str(i) / 'run' / 'study.db'}"
        assert optuna.get_all_study_names(url) == ["mcusearch"]


def test_workers_with_one_seed_draw_different_configurations(tmp_path):
    """Each worker builds its sampler from the same search.seed; they must not propose the same
    sequence of configurations (they would build the same models side by side), while one run
    stays reproducible (the draws follow the seed and the trial numbers)."""
    from mcusearch.knobs import knobs_from_spec, search_space
    from mcusearch.spec import load_spec
    from mcusearch.study import make_sampler

    def draws(sampler_name: str) -> list[list[dict]]:
        path = _tiny_spec(tmp_path, tmp_path / "cache", "sqlite://", sampler=sampler_name)
        data = yaml.safe_load(path.read_text())
        data["knobs"]["channels"]["values"] = list(range(1, 17))
        data["knobs"]["opt_level"] = ["-O0", "-O1", "-O2", "-O3", "-Os"]
        path.write_text(yaml.safe_dump(data))
        spec = load_spec(path)
        space = search_space(knobs_from_spec(spec))
        storage = optuna.storages.InMemoryStorage()
        directions = [o.direction for o in spec.objectives]
        workers = [optuna.create_study(storage=storage, study_name="s", directions=directions,
                                       sampler=make_sampler(spec, space), load_if_exists=True)
                   for _ in range(2)]
        seen: list[list] = [[], []]
        for _ in range(6):  # the workers take turns, as two processes started together would
            for w, study in enumerate(workers):
                trial = study.ask()
                params = {n: trial.suggest_categorical(n, c) for n, c in space.items()}
                seen[w].append(params)
                study.tell(trial, [1.0, 1.0, 1.0, 0.5])
        return seen

    for sampler_name in ("random", "tpe", "nsga2"):
        a, b = draws(sampler_name)
        assert a != b, f"{sampler_name}: both workers proposed the same configurations {a}"
        assert [a, b] == draws(sampler_name), f"{sampler_name}: not reproducible"

    # A resumed run (a new process, a new sampler) goes on from the trials already in the study,
    # rather than drawing again the first run's configurations (reused, but each one a trial spent).
    path = _tiny_spec(tmp_path, tmp_path / "cache", "sqlite://", sampler="random")
    data = yaml.safe_load(path.read_text())
    data["knobs"]["channels"]["values"] = list(range(1, 17))
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    space = search_space(knobs_from_spec(spec))
    storage = optuna.storages.InMemoryStorage()
    runs = []
    for _ in range(2):
        study = optuna.create_study(storage=storage, study_name="s", sampler=make_sampler(spec, space),
                                    directions=[o.direction for o in spec.objectives], load_if_exists=True)
        runs.append([])
        for _ in range(4):
            trial = study.ask()
            runs[-1].append({n: trial.suggest_categorical(n, c) for n, c in space.items()})
            study.tell(trial, [1.0, 1.0, 1.0, 0.5])
    assert runs[0] != runs[1], runs
