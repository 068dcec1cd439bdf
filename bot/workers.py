"""Local GPU workers started and supervised by the bot (TASTEMAKER_WORKERS).

N  - N subprocesses `python -m engine.worker`, restarted with backoff if they die.
inline - one worker in a thread of this process, for CPU trials and tests.
0  - none: workers run elsewhere (e.g. behind Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from bot.config import Settings

log = logging.getLogger("bot.workers")


class LocalWorkers:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._supervisors: list[asyncio.Task] = []
        self._inline = None
        self._stopping = False

    async def start(self) -> None:
        mode = self.settings.workers
        if mode == "inline":
            from engine.worker import InlineWorker  # the engine imports torch lazily, in its own thread

            s = self.settings
            self._inline = InlineWorker(s.queue_url, s.model, s.device, s.data_dir, dtype=s.dtype, compile=s.compile).start()
            log.info("started an inline worker (%s on %s)", self.settings.model, self.settings.device)
            return
        for index in range(int(mode)):
            self._supervisors.append(asyncio.create_task(self._supervise(index), name=f"worker-{index}"))

    def command(self, index: int) -> list[str]:
        s = self.settings
        return [
            sys.executable, "-m", "engine.worker",
            "--queue", s.queue_url, "--preset", s.model, "--device", s.device,
            "--data-dir", str(s.data_dir), "--dtype", s.dtype, "--compile" if s.compile else "--no-compile",
            "--id", f"local-{index}",
        ]

    async def _supervise(self, index: int) -> None:
        backoff = 1.0
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(*self.command(index))
            self._procs[index] = proc
            log.info("started local worker %d (pid %d)", index, proc.pid)
            loop = asyncio.get_running_loop()
            started = loop.time()
            code = await proc.wait()
            if self._stopping:
                return
            backoff = 1.0 if loop.time() - started > 60 else min(backoff * 2, 60.0)
            log.error("local worker %d exited with %s; restarting in %.0fs", index, code, backoff)
            await asyncio.sleep(backoff)

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        if self._inline is not None:
            await asyncio.to_thread(self._inline.stop, timeout)
        for proc in self._procs.values():
            if proc.returncode is None:
                proc.terminate()  # SIGTERM: the worker finishes or requeues its job
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    proc.kill()
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
