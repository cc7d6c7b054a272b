"""Run the ranges of a parallel scan in worker processes, and merge what they find into one pass.

Each task runs in its own fresh interpreter (``isolate.IsolatedWorker``), as
the single-process scan's Caffe child does: a Caffe CHECK in one worker ends
that worker, not the command. A thread per worker slot feeds it tasks and
relays its progress; the parent adds up the records of every worker for
one progress display, and shifts each worker's record positions by the
start of its range, so the findings are the single pass's. Memory stays
bounded in every worker: records are streamed, and only findings are kept.

Ctrl-C (or the first worker that fails) stops every worker: the children
ignore SIGINT, so the parent kills each one that is still running before it
lets the interrupt through, and no child outlives the command.
"""

from __future__ import annotations

import os
import queue
import threading

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.isolate import IsolatedWorker
from caffe_nanlayers.scan import fast_path, hdf5_range, partition, runner

JOIN_POLL_S = 0.1
READERS = {"fast": fast_path.scan_range, "hdf5": hdf5_range.scan_range, "caffe": runner.run_scan_net}


def default_workers() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class HandedOver(Exception):
    """A worker met a record only Caffe's own layer may judge: the scan reads the pass through Caffe."""

    def __init__(self, source: int, record: int, why: str):
        super().__init__(f"source {source} record {record} {why}")
        self.source, self.record, self.why = source, record, why


class _Pool:
    def __init__(self, tasks, workers: int, on_records):
        self.tasks = queue.Queue()
        for number, task in enumerate(tasks):
            self.tasks.put((number, task))
        self.results: dict[int, object] = {}
        self.findings: list[dict] = []
        self.done = [0] * len(tasks)
        self.files_done = [0] * len(tasks)  # of a run of an HDF5 list not counted before the scan
        self.failure: BaseException | None = None
        self.live: set[IsolatedWorker] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.on_records = on_records
        self.threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(workers)]

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                number, task = self.tasks.get_nowait()
            except queue.Empty:
                return
            try:
                result = self._run(number, task)
            except BaseException as exc:
                if task.kind != "caffe" and isinstance(exc, Exception):
                    # A reader of ours that failed or died on the user's data (HDF5 on a damaged
                    # file, LMDB on a corrupt page): the single pass, whose guarded checks come
                    # first, names the record it could not read, as one process does.
                    exc = HandedOver(task.source, task.start, f"its worker failed: {exc}")
                with self.lock:
                    if self.failure is None and not self.stopping.is_set():
                        self.failure = exc
                self.stop()
                return
            with self.lock:
                self.results[number] = result
            if task.kind != "caffe" and result is not None and result["handover"] is not None:
                record, why = result["handover"]
                with self.lock:
                    if self.failure is None:
                        self.failure = HandedOver(task.source, task.start + record, why)
                self.stop()  # the pass goes to Caffe: the other ranges are not needed
                return

    def _run(self, number: int, task):
        # A fast worker never imports pycaffe; a worker running Caffe's layer does first.
        worker = IsolatedWorker(warm_up=(import_caffe,) if task.kind == "caffe" else ())
        with self.lock:
            if self.stopping.is_set():
                worker.close()
                return None
            self.live.add(worker)

        def receive(message):
            _, files_done, records_done, new_findings = message
            with self.lock:
                for finding in new_findings:
                    finding["source"] = task.source
                    finding["record"] += task.start
                    if task.files is not None:
                        finding["task"] = number  # its start in the pass is known at the end
                self.findings.extend(new_findings)
                self.done[number] = records_done
                self.files_done[number] = files_done or 0
                # Under the lock, and never once stopping: the display neither goes backwards nor
                # draws after the line that says the scan was interrupted.
                if self.on_records is not None and not self.stopping.is_set():
                    self.on_records(self.done, self.files_done)

        try:
            with worker:
                # A worker that dies (a Caffe CHECK, the kernel's OOM killer) is named with its range.
                function = READERS[task.kind]
                return worker.run(function, *task.args, on_message=receive, context=task.describe())
        finally:
            with self.lock:
                self.live.discard(worker)

    def stop(self) -> None:
        """Kill every running worker (they ignore Ctrl-C, so that only the parent decides)."""
        self.stopping.set()
        with self.lock:
            live = list(self.live)
        for worker in live:
            # Only the process is ended here: the thread that runs the worker sees it die and closes
            # its pipe and files itself (closing them from here too would close a descriptor twice).
            worker._kill()

    def run(self) -> None:
        try:
            for thread in self.threads:
                thread.start()
            for thread in self.threads:
                while thread.is_alive():
                    thread.join(JOIN_POLL_S)  # a timed join lets Ctrl-C reach this thread
        except BaseException:
            self.stop()
            raise
        if self.failure is not None:
            raise self.failure


def run_tasks(tasks, workers: int, on_records=None) -> tuple[list[dict], list[int], list[list], dict]:
    """Run ``tasks`` (``partition.Task``) on ``workers`` processes: findings, records, what they checked.

    Findings come back with their source's index and their position in its pass, sorted. The
    records scanned and the broken records (``[position, key, why]`` for each record Caffe cannot
    read whole, in pass order) are per source; so are, for an HDF5 list whose files the workers
    checked, ``{"files": [Hdf5File, ...]}`` and, if one failed, ``"refused"``: the check's first
    error. ``on_records(done, files_done)`` hears the records (and the files of an uncounted HDF5
    run) done by each task. Raises ``HandedOver`` when a worker met a record for Caffe to judge.
    """
    pool = _Pool(tasks, max(1, min(workers, len(tasks))), on_records)
    pool.run()
    sources = 1 + max((task.source for task in tasks), default=-1)
    scanned, broken = [0] * sources, [[] for _ in range(sources)]
    for number, task in enumerate(tasks):
        result = pool.results[number]
        if task.kind == "caffe":
            scanned[task.source] += result[0]
        else:
            scanned[task.source] += result["records"]
            found = result.get("broken", [])
            broken[task.source].extend([task.start + at, key, why] for at, key, why in found)
    files = _place_unsurveyed_runs(tasks, pool.results, pool.findings)
    return sorted(pool.findings, key=_pass_order), scanned, [sorted(b) for b in broken], files


def _place_unsurveyed_runs(tasks, results: dict, findings: list[dict]) -> dict[int, dict]:
    """Per source, what the workers found checking an HDF5 list's files; their findings placed in the pass.

    A run whose rows were not counted before the scan starts, in the pass, where the runs before it
    end: its findings are moved there, with their batch and position. A file that failed its check
    is the list's error, as the check of the whole list before a scan would have said: the first one
    (the runs come in list order).
    """
    checked: dict[int, dict] = {}
    starts: dict[int, int] = {}
    for number, task in enumerate(tasks):
        if task.files is None:
            continue
        result, source = results[number], checked.setdefault(task.source, {"files": []})
        if "refused" in source:
            continue
        if "refused" in result:
            source["refused"] = result["refused"][1]
            continue
        starts[number] = sum(entry.rows for entry in source["files"])
        source["files"].extend(result["files"])
    for finding in findings:
        number = finding.pop("task", None)
        if number is not None and number in starts:
            finding["record"] += starts[number]
            batch_size = tasks[number].args[0].batch_size
            finding["batch"], finding["position"] = divmod(finding["record"], batch_size)
    return checked


def scan_in_parallel(sources, copies, planned, config, workers, workdir, pb2, phase_name, on_progress):
    """``run_tasks``' findings, records and broken records of the scan run by ``workers`` processes, or None.

    None when a source cannot be split (the scan then runs in one Caffe process as before), or
    when a worker met a record only Caffe may judge (the scan hands the pass to Caffe, whose
    answer, often the CHECK that stops it, is the one a single process gives).
    """
    label_of = {bottom["top"]: bottom["label"] for bottom in config["bottoms"]}
    tasks = partition.plan(sources, copies, planned, label_of, workers, workdir, pb2, phase_name)
    if tasks is None or (all(t.kind == "caffe" for t in tasks) and len(tasks) == len(sources)):
        return None  # nothing to split: Caffe's own single pass is the same work

    def on_records(done: list[int], files_done: list[int]) -> None:
        if on_progress is not None:
            total = estimated_total(tasks, planned, done, files_done)
            on_progress(sum(done), total, "records")

    try:
        return run_tasks(tasks, workers, on_records)
    except HandedOver:
        return None


def estimated_total(tasks, planned: list[int], done: list[int], files_done: list[int]) -> int:
    """The records of the whole pass, as far as they are known while the workers read.

    An HDF5 list's runs are not counted before the scan: the files its workers have not read yet
    are counted at the mean rows of the files they have (at first, of the list's first file), so
    the estimate converges on the pass's size and equals it when the last file is read.
    """
    total = sum(count for index, count in enumerate(planned) if not _uncounted(tasks, index))
    for index, count in enumerate(planned):
        if not _uncounted(tasks, index):
            continue
        mine = [n for n, task in enumerate(tasks) if task.source == index]
        files, records = sum(files_done[n] for n in mine), sum(done[n] for n in mine)
        listed = sum(len(tasks[n].files) for n in mine)
        per_file = records / files if files else count / max(1, listed)
        total += records + round((listed - files) * per_file)
    return max(total, sum(done))


def _uncounted(tasks, source: int) -> bool:
    return any(task.source == source and task.files is not None for task in tasks)


def _pass_order(finding: dict) -> tuple:
    """The order of one Caffe pass: by record, and within a record as the worker found them (top by top)."""
    return (finding["source"], finding["record"])
