"""python -m engine.worker: claim jobs from the queue, run them, report back.

The worker is stateless: each job carries everything it needs, and progress,
results and errors go back through the queue. So the same loop runs beside the
bot (a subprocess or, for CPU trials and tests, a thread) or on another machine
behind Redis:

    python -m engine.worker --queue redis://HOST:6379/0

SIGTERM finishes the current job (up to --drain seconds), then requeues it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, get_args

from engine import posting
from engine.config import DtypeName
from engine.jobs import Job, JobCancelled, JobError, JobResult
from engine.queue import IDLE_S, JobQueue, open_queue
from engine.queue_contract import FAILING_AFTER, WorkerStatus

log = logging.getLogger("engine.worker")

Report = Callable[[float, bytes | None], None]


class Runner(Protocol):
    """Runs one job, blocking, in a worker thread (engine.generate.Engine)."""

    def run(self, job: Job, report: Report, should_stop: Callable[[], bool]) -> JobResult: ...


def runner_health(runner: Runner) -> dict:
    """The preset a runner has loaded and the GPU memory this process holds (when
    torch is already in use here; the worker never imports it for this)."""
    engine = getattr(runner, "engine", runner)
    preset = getattr(getattr(engine, "preset", None), "name", "")
    health: dict = {"preset": preset}
    torch = sys.modules.get("torch")
    loaded = getattr(engine, "loaded", None)
    device = getattr(loaded, "device", None)
    if device is not None:
        health["device"] = str(device)
        if torch is not None and device.type == "cuda":
            health["gpu_memory_used"] = int(torch.cuda.memory_reserved(device))
            health["gpu_memory_total"] = int(torch.cuda.get_device_properties(device).total_memory)
    return health


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10000}"


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        runner: Runner,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = IDLE_S,
        progress_every_s: float = 0.25,
        status_every_s: float = 15.0,
    ):
        """`poll_s`: the longest an idle worker waits for the queue's wake-up
        before it looks again (a lost wake-up, an expired lease)."""
        self.queue = queue
        self.runner = runner
        self.worker_id = worker_id or default_worker_id()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.progress_every_s = progress_every_s
        self.status_every_s = status_every_s
        self.status = WorkerStatus(worker_id=self.worker_id, started_at=time.time())
        self.current: Job | None = None
        self._abort = threading.Event()  # set to give up the current job (shutdown drain expired)

    async def run_forever(self, stop: asyncio.Event, drain_s: float = 60.0) -> None:
        """Claim and run jobs until `stop` is set, waiting for the queue's wake-up
        between them. A job in progress is finished, or requeued if it runs past
        `drain_s` after the stop. Tries this worker id left running (it crashed
        and was restarted) go back to the queue first."""
        log.info("worker %s ready on %s", self.worker_id, self.queue.where)
        reporter = asyncio.ensure_future(self._report_status_every(self.status_every_s))
        try:
            await self._serve(stop, drain_s)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            await self.report_status("stopped")
        log.info("worker %s stopped", self.worker_id)

    async def _serve(self, stop: asyncio.Event, drain_s: float) -> None:
        released = False
        backoff = self.poll_s
        while not stop.is_set():
            failed = False
            try:
                if not released:
                    await self.queue.release(self.worker_id)
                    released = True
                work = asyncio.ensure_future(self.run_once())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():
                    done, _ = await asyncio.wait({work}, timeout=drain_s)
                    if not done:
                        log.warning("worker %s: drain timed out, requeueing %s", self.worker_id, self.current and self.current.id)
                        self._abort.set()
                        await work
                stopping.cancel()
                if work.result():
                    backoff = self.poll_s
                    continue
                await self._idle(stop)
            except Exception as error:  # the queue is unreachable: wait and try again
                log.warning("worker %s: queue error (%s); retrying in %.1fs", self.worker_id, error, backoff)
                failed = True
            if failed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = self.poll_s

    async def report_status(self, state: str | None = None) -> None:
        """Tell the queue how this worker is (/admin workers); never fails the worker."""
        fields = runner_health(self.runner)
        fields["state"] = state or ("busy" if self.current is not None else "idle")
        self.status = self.status.model_copy(update=fields)
        try:
            async with asyncio.timeout(5.0):  # a queue that is down must not hold up a shutdown
                await self.queue.report_worker(self.status)
        except Exception as error:
            log.debug("worker %s: could not report its status: %s", self.worker_id, error)

    async def _report_status_every(self, seconds: float) -> None:
        while True:
            await self.report_status()
            await asyncio.sleep(seconds)

    def _count(self, ok: bool, error: str = "", *, workers_fault: bool = True) -> None:
        """Jobs done and failed; a failure on this worker's side (not bad input) counts toward FAILING_AFTER."""
        s = self.status
        if ok:
            self.status = s.model_copy(update={"jobs_done": s.jobs_done + 1, "failed_in_row": 0})
            return
        in_row = s.failed_in_row + 1 if workers_fault else s.failed_in_row
        self.status = s.model_copy(update={"jobs_failed": s.jobs_failed + 1, "failed_in_row": in_row, "last_error": error[:300]})
        if workers_fault and in_row >= FAILING_AFTER:
            log.warning("worker %s has failed %d jobs in a row; the last: %s", self.worker_id, in_row, error)

    async def _idle(self, stop: asyncio.Event) -> None:
        """Nothing to claim: wait for the queue's wake-up (or poll_s), or the stop."""
        woken = asyncio.ensure_future(self.queue.wait_for_work(self.poll_s))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            woken.cancel()
        if woken.done() and not woken.cancelled() and woken.exception() is not None:
            raise woken.exception()

    async def run_once(self) -> bool:
        """Claim one job and run it. False when the queue had nothing for us."""
        await self.queue.requeue_expired()
        job = await self.queue.claim(self.worker_id, self.lease_s)
        if job is None:
            return False
        self.current = job
        try:
            await self.report_status("busy")
            await self._run(job)
        finally:
            self.current = None
        await self.report_status("idle")
        return True

    async def _run(self, job: Job) -> None:
        # 1. Wire the blocking runner to the queue: progress goes into a slot the
        #    keeper task drains, so a slow queue never stalls the GPU.
        stop = threading.Event()
        latest: list[tuple[float, bytes | None]] = []
        started = time.perf_counter()

        def report(percent: float, preview: bytes | None) -> None:
            if preview is None and latest:  # a step without a preview keeps the newest one until it is sent
                preview = latest[0][1]
            latest[:] = [(percent, preview)]

        def should_stop() -> bool:
            return stop.is_set() or self._abort.is_set()

        keeper = asyncio.ensure_future(self._keep_alive(job, latest, stop))
        # 2. Run the job in a thread.
        try:
            result = await asyncio.to_thread(self.runner.run, job, report, should_stop)
        except JobCancelled:
            if self._abort.is_set():
                await self.queue.fail(job.id, self.worker_id, "the worker shut down", retryable=True)
            log.info("job %s cancelled after %.2fs", job.id, time.perf_counter() - started)
            return
        except JobError as error:
            self._count(False, str(error), workers_fault=error.retryable)  # not retryable: the job's own input
            state = await self.queue.fail(job.id, self.worker_id, str(error), retryable=error.retryable)
            log.info("job %s %s: %s", job.id, state, error)
            return
        except Exception as error:
            log.exception("job %s crashed", job.id)
            self._count(False, f"{type(error).__name__}: {error}")
            await self.queue.fail(job.id, self.worker_id, f"{type(error).__name__}: {error}", retryable=True)
            return
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        # 3. What Discord shows (a grid fitted to the upload limit), made here beside the GPU
        #    rather than in the bot; then hand the result back (the queue refuses it if we lost the lease).
        try:
            post = await asyncio.to_thread(posting.for_result, job, result)
            clips = await asyncio.to_thread(posting.clips_for_result, job, result)
        except Exception:  # the bot makes it then: never lose a result over its preview
            log.exception("job %s: could not make its post; the bot will", job.id)
            post, clips = None, []
        result = result.model_copy(update={"worker": self.worker_id, "post": post, "post_clips": clips})
        self._count(True)
        if await self.queue.complete(job.id, self.worker_id, result):
            log.info("job %s done in %.2fs", job.id, time.perf_counter() - started)
        else:
            log.warning("job %s finished but this worker no longer held it; result dropped", job.id)

    async def _keep_alive(self, job: Job, latest: list, stop: threading.Event) -> None:
        """Send the newest progress and renew the lease until cancelled."""
        next_beat = time.monotonic() + self.lease_s / 3
        while True:
            await asyncio.sleep(self.progress_every_s)
            try:
                if latest:
                    percent, preview = latest.pop()
                    await self.queue.progress(job.id, self.worker_id, percent, preview)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.lease_s / 3
                    if not await self.queue.heartbeat(job.id, self.worker_id, self.lease_s):
                        stop.set()  # cancelled, or the lease went to another worker
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the GPU busy; the lease decides
                log.warning("job %s: could not reach the queue: %s", job.id, error)


class PresetEngines:
    """Runs each job on the preset it names (`--v`): the worker's own preset
    stays loaded; another one is loaded on demand, after freeing the first."""

    def __init__(self, preset: str, device: str, data_dir: Path, *, dtype: DtypeName = "auto", compile: bool = False):
        from engine.generate import Engine  # torch is imported here, never by the bot

        self._make = lambda name: Engine(name, device=device, data_dir=data_dir, dtype=dtype, compile=compile)
        self.engine = self._make(preset)
        self.engine.load()

    def run(self, job: Job, report: Report, should_stop: Callable[[], bool]) -> JobResult:
        from engine.models import PresetLoadError
        from engine.presets import UnknownPresetError, get_preset

        try:
            wanted = get_preset(job.preset).name  # an alias runs on its preset
        except UnknownPresetError:
            raise JobError(
                f"this worker doesn't know the model preset {job.preset!r}: give it the bot's presets.toml",
                retryable=False,
            ) from None
        if wanted != self.engine.preset.name:
            log.info("switching preset %s -> %s", self.engine.preset.name, wanted)
            self.engine.close()
            self.engine = self._make(wanted)
        try:
            return self.engine.run(job, report, should_stop)
        except PresetLoadError as error:
            raise JobError(str(error), retryable=False) from None


def load_engine(preset: str, device: str, data_dir: Path, *, dtype: DtypeName = "auto", compile: bool = False) -> Runner:
    return PresetEngines(preset, device, data_dir, dtype=dtype, compile=compile)


class InlineWorker:
    """A worker in a thread of the calling process: CPU trials and tests."""

    def __init__(
        self,
        queue_url: str,
        preset: str,
        device: str,
        data_dir: Path,
        lease_s: float = 30.0,
        *,
        dtype: DtypeName = "auto",
        compile: bool = False,
        runner: Runner | None = None,
    ):
        """`runner`: run jobs on this instead of loading `preset` (a bench double at a GPU's pace)."""
        self.queue_url, self.preset, self.device, self.data_dir = queue_url, preset, device, data_dir
        self.runner = runner
        self.dtype, self.compile = dtype, compile
        self.lease_s = lease_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tastemaker-inline-worker", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> InlineWorker:
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # surfaced through .error and the log
            self.error = error
            log.exception("inline worker died")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = self.runner or await asyncio.to_thread(
            load_engine, self.preset, self.device, self.data_dir, dtype=self.dtype, compile=self.compile
        )
        queue = await open_queue(self.queue_url)
        self._ready.set()
        try:
            await Worker(queue, runner, lease_s=self.lease_s).run_forever(self._stop)
        finally:
            await queue.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # its loop already ended
        self._thread.join(timeout)


def check(preset: str, data_dir: Path, device: str = "auto") -> int:
    """Print what `preset` and every preset of the owner's file need, and whether it is
    on disk (never downloads), with each one's licence, how --p steers it and its estimated
    GPU memory. 1 when something is missing (or this machine can't load its quantised weights)."""
    from engine import models, video
    from engine.presets import PRESETS, TINY_OPENCLIP_MODEL, get_preset

    names = [get_preset(preset).name] + sorted(
        {p.name for p in PRESETS.values() if p.source != "built-in"} - {get_preset(preset).name}
    )
    missing = 0
    for name in names:
        p = get_preset(name)
        where = "" if p.source == "built-in" else f" (from {p.source})"
        print(f"preset {name}{where}: {p.description}")
        print(f"  licence: {p.licence or 'not named (add `licence = ...` to its preset)'}")
        steer = ("its ViT-H IP-Adapter" if p.steering == "adapter" else
                 "the taste's style words (no IP-Adapter reads ViT-H: image prompts, /blend and --sref links refused)")
        print(f"  --p steers through {steer}; --q 2 keeps the best of 8 by the member's taste")
        if p.kind != "tiny" and p.openclip_model != TINY_OPENCLIP_MODEL:
            offload = f", offload {p.offload}" if p.offload != "none" else ""
            print(f"  GPU memory, estimated ({p.quantize or 'bf16'}{offload}): {p.gpu_estimate().describe()}")
        items = models.check(p, data_dir, device) + video.check(p, data_dir)
        width = max(len(item.name) for item in items)
        for item in items:
            mark = "ok     " if item.present else "MISSING"
            print(f"  {mark}  {item.name:<{width}}  {item.detail}")
        missing += sum(not item.present for item in items)
    if missing:
        print(f"{missing} missing: they download on first use (needs internet), or build the tiny preset with TASTEMAKER_MODEL=tiny.")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    from engine.config import EngineSettings

    settings = EngineSettings()
    parser = argparse.ArgumentParser(prog="python -m engine.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", default=settings.queue_url, help="sqlite:///PATH or redis://HOST:6379/0")
    parser.add_argument("--preset", default=settings.model, help="model preset (TASTEMAKER_MODEL)")
    parser.add_argument("--device", default=settings.device, choices=["auto", "cuda", "cpu"])
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir)
    parser.add_argument("--dtype", default=settings.dtype, choices=get_args(DtypeName), help="weights dtype (TASTEMAKER_DTYPE)")
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=settings.compile,
        help="torch.compile the UNet on CUDA (TASTEMAKER_COMPILE)",
    )
    parser.add_argument("--id", dest="worker_id", default=None, help="worker name in logs and the queue")
    parser.add_argument("--lease", type=float, default=30.0, help="seconds a claim lasts without a heartbeat")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to finish the current job on SIGTERM")
    parser.add_argument("--check", action="store_true", help="list what the preset needs and whether it is present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The owner's presets, as the bot reads them (remote workers need the same file).
    from engine.presets import PresetFileError, UnknownPresetError, get_preset, load_presets, presets_file

    try:
        load_presets(file=presets_file(args.data_dir, settings.presets))
        get_preset(args.preset)
    except (PresetFileError, UnknownPresetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        return check(args.preset, args.data_dir, args.device)
    from engine.models import fit_problem, resolve_device

    if (problem := fit_problem(get_preset(args.preset), resolve_device(args.device))) is not None:
        print(f"error: {problem}", file=sys.stderr)  # quantised weights this machine can't load: before the queue
        return 2
    try:
        return asyncio.run(_serve(args))
    except ValueError as error:  # a queue URL or path that won't get better: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    queue = await connect_patiently(args.queue, stop)  # first: a wrong queue is refused before a long model load
    if queue is None:
        return 0
    try:
        runner = await asyncio.to_thread(load_engine, args.preset, args.device, args.data_dir, dtype=args.dtype, compile=args.compile)
        await Worker(queue, runner, args.worker_id, lease_s=args.lease).run_forever(stop, drain_s=args.drain)
    finally:
        await queue.close()
    return 0


async def connect_patiently(url: str, stop: asyncio.Event) -> JobQueue | None:
    """Open the queue, waiting out an outage (a worker may start before Redis)."""
    delay = 1.0
    while not stop.is_set():
        try:
            return await open_queue(url)
        except ValueError:
            raise  # a malformed URL or a missing database won't get better
        except Exception as error:
            log.warning("queue %s unreachable (%s); retrying in %.0fs", url.split("@")[-1], error, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, 30.0)
    return None


if __name__ == "__main__":
    sys.exit(main())
