"""``caffe-nan watch``: guard a real ``caffe train`` run, stop it at the first NaN, name the layer.

Checks in the net cost a few percent on every step for a NaN that may come
on day three; reading the log afterwards and training again up to the NaN
costs hours. The watch does neither: the real binary runs unchanged, the
watch reads its log as it is written (a separate process, on another core),
and only when the first sign appears does it pay for a diagnosis: it stops
Caffe at once without a snapshot, gives the doctor's verdict on the log, and
replays the run from its newest snapshot before the NaN through ``locate``
to name the producing layer.

This module decides; ``WatchReport`` is the value the command prints.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from caffe_nanlayers.diagnose.diagnosis import Diagnosis
from caffe_nanlayers.diagnose.watch_log import Sign, WatchReader, verdict
from caffe_nanlayers.diagnose.watch_process import CaffeProcess
from caffe_nanlayers.diagnose.watch_replay import ReplayPlan, ReplayStart, lower_priority, replay_run, warm_up
from caffe_nanlayers.diagnose.watch_status import StatusLine
from caffe_nanlayers.errors import UserError, reading, writing

EXIT_CLEAN = 0
EXIT_NAN = 1
EXIT_USAGE = 2
EXIT_CAFFE_FAILED = 3  # Caffe stopped by itself on an error (a CHECK, a missing file, a signal)
EXIT_INTERRUPTED = 130
# Causes a log's whole history shows better than a replay from the last snapshot.
HISTORY_CAUSES = ("lr_policy", "gradient_explosion")


@dataclasses.dataclass
class CaffeCommand:
    """``caffe train`` and the flags of it the watch needs to know about."""

    argv: list[str]
    solver: str
    weights: str | None = None  # -weights (comma-separated in Caffe: the first file is the start)
    resume: str | None = None  # -snapshot: a .solverstate to resume from


CAFFE_FLAGS_WITH_VALUE = {"solver", "weights", "snapshot", "gpu", "sigint_effect", "sighup_effect", "model"}


def parse_caffe_command(argv: list[str]) -> CaffeCommand:
    """Read ``caffe train -solver S [flags]`` as gflags does (-flag v, --flag v, -flag=v, --flag=v)."""
    if len(argv) < 2:
        raise UserError("after '--', expected a caffe command: caffe train -solver SOLVER [caffe flags]")
    if "train" not in argv[1:]:
        raise UserError(f"the watched command must be 'caffe train ...', not {' '.join(argv[:2])!r}")
    values: dict[str, str] = {}
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.lstrip("-").partition("=")
            if not eq and name in CAFFE_FLAGS_WITH_VALUE and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            values[name] = value
        i += 1
    if not values.get("solver"):
        raise UserError("the caffe train command has no -solver: caffe train -solver SOLVER [caffe flags]")
    weights = values.get("weights")
    return CaffeCommand(
        list(argv), values["solver"], weights.split(",")[0] if weights else None, values.get("snapshot")
    )


def default_caffe() -> str | None:
    """The ``caffe`` beside this Python (the project's .venv/bin), else the one on PATH."""
    import shutil

    beside = Path(sys.prefix) / "bin" / "caffe"
    if beside.is_file():
        return str(beside)
    return shutil.which("caffe")


@dataclasses.dataclass
class WatchOptions:
    command: CaffeCommand
    log: str | None = None
    out_dir: str | None = None
    replay: bool = True
    status_every: float = 30.0


@dataclasses.dataclass
class WatchReport:
    """What the watch saw and concluded, for text and JSON alike."""

    command: list[str]
    log: str
    outcome: str  # "clean", "nan", "caffe_failed", "interrupted"
    iteration: int | None  # the last iteration Caffe logged
    sign: Sign | None = None
    seconds: float = 0.0
    doctor: Diagnosis | None = None
    replay: dict | None = None  # start, approximate, reasons, skipped, diagnosis or error
    fatal: str | None = None
    snapshots: list[dict] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)
    diagnosis_seconds: float | None = None  # from the first sign to the report

    @property
    def exit_code(self) -> int:
        return {
            "clean": EXIT_CLEAN,
            "nan": EXIT_NAN,
            "caffe_failed": EXIT_CAFFE_FAILED,
            "interrupted": EXIT_INTERRUPTED,
        }[self.outcome]

    def as_dict(self) -> dict:
        replay = None
        if self.replay is not None:
            replay = {k: v for k, v in self.replay.items() if k != "diagnosis"}
            diagnosis = self.replay.get("diagnosis")
            replay["diagnosis"] = diagnosis.as_dict() if diagnosis is not None else None
        return {
            "tool": "watch",
            "command": self.command,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "iteration": self.iteration,
            "seconds": round(self.seconds, 3),
            "diagnosis_seconds": None if self.diagnosis_seconds is None else round(self.diagnosis_seconds, 3),
            "sign": self.sign.as_dict() if self.sign else None,
            "caffe_error": self.fatal,
            "doctor": self.doctor.as_dict() if self.doctor else None,
            "replay": replay,
            "cause": self.cause.as_dict() if self.cause else None,
            "snapshots": self.snapshots,
            "log": self.log,
            "files": self.files,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False, default=str)

    @property
    def cause(self):
        """The cause to act on: the log's history decides a schedule or an explosion, the replay the rest.

        The replay starts at the last snapshot, so it sees only a few iterations of history and cannot
        tell an explosion that took thousands; the log cannot name a layer without debug_info.
        """
        doctor = self.doctor.cause if self.doctor is not None else None
        replayed = (self.replay or {}).get("diagnosis")
        if doctor is not None and doctor.id in HISTORY_CAUSES:
            return doctor
        if replayed is not None and replayed.cause is not None:
            return replayed.cause
        return doctor

    def to_text(self) -> str:
        lines = []
        if self.outcome == "clean":
            lines.append(f"training ended clean at iteration {self.iteration} ({self.seconds:.1f} s)")
        elif self.outcome == "caffe_failed":
            lines.append(f"caffe failed: {self.fatal}")
        elif self.outcome == "interrupted":
            lines.append(f"interrupted at iteration {self.iteration}: caffe stopped")
        else:
            lines.append(
                f"NaN at iteration {_iteration_text(self.sign.iteration)}: {self.sign.short()}; "
                "caffe killed at once (SIGKILL: it writes no snapshot on its way out)"
            )
            if self.doctor is not None:
                doctor_cause = self.doctor.cause.id if self.doctor.cause else "no cause"
                lines.append(f"doctor (from the log): {doctor_cause}")
                lines += [f"  - {item}" for item in self.doctor.evidence]
            lines += self._replay_text()
            cause = self.cause
            if cause is not None:
                lines.append(f"probable cause [{cause.id}]: {cause.title}")
                lines.append(f"  why: {cause.explanation}")
                lines.append(f"  fix: {cause.fix}")
        lines.append(f"log: {self.log}")
        lines += [f"note: {note}" for note in self.notes]
        if self.files:
            lines.append("written: " + ", ".join(self.files))
        return "\n".join(lines)

    def _replay_text(self) -> list[str]:
        replay = self.replay
        if replay is None:
            return []
        exact = "approximate" if replay["approximate"] else "same data order as the run"
        lines = [f"replay from {replay['start_text']} to iteration {replay['to_iteration']} ({exact}):"]
        for reason in replay["reasons"]:
            lines.append(f"  approximate: {reason}")
        for skipped in replay["skipped"]:
            lines.append(
                f"  data layer {skipped['layer']}: {skipped['batches']} batches of {skipped['batch_size']} "
                f"skipped ({skipped['records']} records) to where the run had it"
            )
        if replay.get("error"):
            lines.append(f"  the replay failed: {replay['error']}")
            return lines
        diagnosis: Diagnosis = replay["diagnosis"]
        lines.append(f"  {diagnosis.summary}")
        if not diagnosis.nan_found:
            why = "the data order differs (above)" if replay["approximate"] else "randomness in the net"
            lines.append(
                f"  the replay stayed finite: the NaN needs more than the snapshot and the batches ({why})"
            )
        lines += [f"  - {item}" for item in diagnosis.evidence if not item.startswith("saved ")]
        return lines


class Watch:
    """One watched run: start Caffe, read it, stop it, diagnose."""

    def __init__(self, options: WatchOptions, err=None, on_progress=None):
        self.options = options
        self.err = err if err is not None else sys.stderr
        self.on_progress = on_progress or (lambda text: None)
        command = options.command
        with reading(command.solver, "a solver prototxt"):
            Path(command.solver).open("rb").close()
        # Only the solver: its net, data and weights are Caffe's to open, and its failure to report.
        self.solver = read_solver_facts(command.solver)
        self.log_path = Path(options.log) if options.log else default_log_path(self.solver)

    def run(self) -> WatchReport:
        from caffe_nanlayers.errors import refuse_to_overwrite

        command = self.options.command
        refuse_to_overwrite(self.log_path, (command.solver, command.weights, command.resume), "--log")
        reader = WatchReader()
        status = StatusLine(self.err, every=self.options.status_every)
        started = time.monotonic()
        with writing(self.log_path, "the training log (--log)"):
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            process = _start(command.argv, self.log_path)
        outcome = None
        sign_at = None
        with process, _ReplayWorker(self.options.replay) as worker:
            try:
                for raw in process.lines():
                    sign = reader.feed(raw.decode("utf-8", errors="replace"))
                    if sign is not None:
                        process.kill_now()
                        sign_at = time.monotonic()
                        break
                    if reader.iteration is not None:
                        worker.start()  # training is under way: Caffe's own start-up is not slowed
                    status.update(reader)
                for (
                    raw
                ) in process.lines():  # what Caffe wrote before it died: logged, and its snapshots noted
                    reader.feed(raw.decode("utf-8", errors="replace"))
                returncode = process.wait()
            except KeyboardInterrupt:
                status.clear()
                self.err.write("caffe-nan watch: interrupted, stopping caffe (its -sigint_effect applies)\n")
                process.interrupt()
                process.finish_interrupt()
                outcome = "interrupted"
                returncode = process.returncode
            status.clear()
            return self._conclude(reader, outcome, returncode, started, sign_at, worker)

    def _conclude(self, reader, outcome, returncode, started, sign_at, worker) -> WatchReport:
        """What happened, decided on what the reader saw; the doctor and the replay once there is a NaN."""
        command = self.options.command
        reader.finish()
        if outcome is None:
            outcome = "nan" if reader.sign is not None else ("clean" if returncode == 0 else "caffe_failed")
        report = WatchReport(
            command.argv,
            str(self.log_path),
            outcome,
            reader.iteration,
            reader.sign,
            time.monotonic() - started,
            snapshots=[s.as_dict() for s in reader.snapshots],
        )
        if outcome == "caffe_failed":
            report.fatal = _failure(reader, returncode, self.log_path)
        if outcome == "clean" and reader.iteration in (None, 0) and self.solver.max_iter == 0:
            report.notes.append("caffe trained 0 iterations: the solver has no max_iter (0)")
        if outcome == "nan":
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                report.doctor = verdict(handle, str(self.log_path))
            if self.options.replay:
                report.replay = self._replay(reader, report, worker.start())
            report.diagnosis_seconds = time.monotonic() - sign_at
        return report

    def _replay(self, reader: WatchReader, report: WatchReport, worker) -> dict:
        command = self.options.command
        nan_iteration = _nan_iteration(reader)
        out_dir = Path(self.options.out_dir) if self.options.out_dir else default_out_dir(self.log_path)
        plan = ReplayPlan(
            command.solver,
            str(out_dir),
            nan_iteration,
            list(reader.snapshots),
            _resumed_start(command.resume),
            command.weights,
        )
        result = {
            "start": None,
            "start_text": "?",
            "to_iteration": nan_iteration,
            "approximate": False,
            "reasons": [],
            "skipped": [],
            "out_dir": str(out_dir),
            "diagnosis": None,
            "error": None,
        }

        def on_message(message) -> None:
            if isinstance(message, tuple):
                kind, value = message
                if kind == "start":
                    result["start"], result["start_text"] = value.as_dict(), value.describe()
                    self.on_progress(f"replaying from {value.describe()} to iteration {nan_iteration}")
                elif kind == "notes":
                    report.notes.extend(value)
                elif kind == "reasons":
                    result["reasons"], result["approximate"] = value, bool(value)
                elif kind == "skip":
                    result["skipped"].append(value)
            elif isinstance(message, str):
                self.on_progress(message)

        try:
            diagnosis = worker.run(replay_run, plan, on_message=on_message, context="replay")
        except UserError as exc:
            result["error"] = str(exc)
            return result
        result["diagnosis"] = diagnosis
        saved = diagnosis.details.get("saved") or {}
        report.files += [str(path) for path in saved.values()]
        return result


class _ReplayWorker:
    """The replay's child process, started once training is under way, ended with the watch."""

    def __init__(self, wanted: bool):
        self.wanted = wanted
        self.worker = None

    def start(self):
        if self.worker is None and self.wanted:
            from caffe_nanlayers.isolate import IsolatedWorker

            self.worker = IsolatedWorker(warm_up=[lower_priority, warm_up])
        return self.worker

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.worker is not None:
            self.worker.__exit__(*exc_info)


def _iteration_text(iteration: int | None) -> str:
    return "?" if iteration is None else str(iteration)


def _nan_iteration(reader: WatchReader) -> int:
    """The iteration to replay up to: the sign's, else the last one logged (a sign before any said none)."""
    for candidate in (reader.sign.iteration, reader.iteration):
        if candidate is not None:
            return candidate
    return 0


def _start(argv: list[str], log_path: Path) -> CaffeProcess:
    try:
        return CaffeProcess(argv, log_path)
    except FileNotFoundError:
        raise UserError(
            f"{argv[0]}: no such program (give the caffe binary: caffe-nan watch -- /path/to/caffe train ...)"
        ) from None
    except PermissionError:
        raise UserError(f"{argv[0]}: not executable") from None


def _failure(reader: WatchReader, returncode: int | None, log_path: Path) -> str:
    if reader.fatal:
        return reader.fatal
    from caffe_nanlayers.isolate import describe_death

    with open(log_path, encoding="utf-8", errors="replace") as handle:
        tail = handle.readlines()[-20:]
    return describe_death(returncode if returncode is not None else -9, "".join(tail)).removeprefix(
        "Caffe stopped: "
    )


def _resumed_start(resume: str | None) -> ReplayStart | None:
    """The run's ``-snapshot`` state as a replay start (its iteration from its name, as Caffe wrote it)."""
    if not resume:
        return None
    import re

    match = re.search(r"_iter_(\d+)\.solverstate(?:\.h5)?$", resume)
    return ReplayStart(int(match.group(1)) if match else 0, resume, None, "resumed")


@dataclasses.dataclass(frozen=True)
class SolverFacts:
    """What the watch reads of the solver before Caffe runs."""

    snapshot_prefix: str
    max_iter: int


def read_solver_facts(path: str) -> SolverFacts:
    """With the linter's pure-Python parser: importing pycaffe for two fields costs seconds of start-up."""
    from caffe_nanlayers.lint.parser import parse_file

    root = parse_file(path).root
    prefix, max_iter = root.scalar("snapshot_prefix", ""), root.scalar("max_iter", 0)
    return SolverFacts(str(prefix), int(max_iter) if isinstance(max_iter, (int, float)) else 0)


def default_log_path(solver: SolverFacts) -> Path:
    """Beside the snapshots (snapshot_prefix's directory), named for the start time: none overwritten."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = solver.snapshot_prefix
    directory = Path(prefix).parent if prefix else Path(".")
    if prefix and prefix.endswith("/"):
        directory = Path(prefix)
    return directory / f"caffe_train_{stamp}.log"


def default_out_dir(log_path: Path) -> Path:
    return log_path.with_name(log_path.stem + "_nan")
