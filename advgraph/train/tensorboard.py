"""TensorBoard event files beside metrics.jsonl (`train --tensorboard`): a TrainingHooks
implementation, so the loop knows nothing of TensorBoard. Needs the optional extra
(`pip install 'advgraph[tensorboard]'`); `require()` says so before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MissingExtra
from ..run.directory import RunDir
from .hooks import SAMPLE_GRID, StartInfo

DIRNAME = "tensorboard"  # runs/<name>/tensorboard/

# metrics.jsonl keys → tags; TensorBoard groups tags by what precedes the slash.
TAGS = {"d_loss": "loss/D", "g_loss": "loss/G", "d_real": "D/real", "d_fake": "D/fake",
        "gradient_penalty": "loss/gradient_penalty", "r1": "loss/r1",
        "lr_d": "lr/D", "lr_g": "lr/G", "momentum": "momentum/D",
        "epoch": "progress/epoch", "time_s": "progress/time_s",
        "steps_per_s": "progress/steps_per_s"}


def require(option: str = "`tensorboard`") -> None:
    """Raise MissingExtra unless torch.utils.tensorboard imports (it needs `tensorboard`)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise MissingExtra(option, "tensorboard", "tensorboard") from None


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row's numeric fields by tag. A monitor row (parzen_*) gives only its own
    values: its step and epoch are the training row's."""
    monitor = any(k.startswith("parzen_") for k in row)
    out = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # None: a Parzen estimate without validation data
        if key.startswith("parzen_"):
            out["parzen/" + key.removeprefix("parzen_")] = float(value)
        elif not monitor:
            out[TAGS.get(key, key)] = float(value)
    return out


def _quiet_writer_thread() -> None:
    """TensorBoard writes on a thread of its own, which re-raises a failed write (a read-only
    directory, a full disk), so Python would print its traceback on the user's terminal. The
    same error reaches the next add_scalar/add_image/flush in this thread, which turns it into
    the one warning; the thread's copy is dropped here."""
    import threading

    previous = threading.excepthook
    if getattr(previous, "advgraph_tensorboard", False):
        return

    def hook(args) -> None:
        if (type(args.thread).__name__ == "_AsyncWriterThread"
                and issubclass(args.exc_type, OSError)):
            return
        previous(args)

    hook.advgraph_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _last_logged_step(files: list[Path]) -> int:
    """The largest step of any event in the event files; −1 when they hold none, or cannot be
    read (a damaged file: then the whole history is logged again, over it)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last = -1
    try:
        for f in files:
            for event in EventFileLoader(str(f)).Load():
                if event.HasField("summary"):
                    last = max(last, event.step)
    except Exception:  # noqa: BLE001 - reading back is best effort; the replay covers it
        return -1
    return last


class TensorBoardHooks:
    """Every metrics row as scalars and every sample grid as an image, at their steps, in
    runs/<name>/tensorboard/.

    A resumed run purges what the event files hold from its step on (work that is redone) and
    logs again what metrics.jsonl and the grids keep from that step, or from the first step the
    files lack (steps trained by a resume without --tensorboard); event files that do not exist
    yet (--tensorboard first given on a resume) get the run's whole history. Events are a
    side line: failing to write them stops them, with a warning, never the run."""

    def __init__(self, warn: Callable[[str], None] | None = None, flush_secs: int = 10) -> None:
        self._warn = warn
        self.flush_secs = flush_secs
        self.writer: Any = None

    def start(self, info: StartInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        _quiet_writer_thread()
        run = RunDir(info.run_path)
        logdir = run.path / DIRNAME
        files = sorted(logdir.glob("events.out.tfevents.*"))
        # From the resumed step, or from the first step the files lack (a resume without
        # --tensorboard in between left a gap); nothing logged yet: the whole history.
        # (from the last step they hold, itself logged again: a damaged file may have cut it)
        since = max(0, min(info.step, _last_logged_step(files))) if files else 0
        try:
            # purge_step: TensorBoard drops the events at and after it from earlier files
            self.writer = SummaryWriter(str(logdir), purge_step=since if files else None,
                                        flush_secs=self.flush_secs)
        except OSError as e:
            self._stopped(e)
            return
        if info.step:
            self._replay(run, since, info.step)

    def _replay(self, run: RunDir, since: int, step: int) -> None:
        """What the run directory keeps from step `since` to the resumed `step`, in step order
        (so that event files cut short end at a step, not with a tag missing further back)."""
        from .snapshots import written_snapshots

        rows = [(r.get("step", 0), 0, r) for r in run.metrics() if r.get("step", 0) >= since]
        grids = [(s, 1, p) for s, p in written_snapshots(run).items() if since <= s <= step]
        for s, kind, item in sorted(rows + grids, key=lambda e: (e[0], e[1])):
            if kind == 0:
                self.report(item)
            else:
                self.image(SAMPLE_GRID, item, s)

    def tick(self, step: int, epoch: float) -> None:
        pass

    def report(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        try:
            for tag, value in scalars(row).items():
                self.writer.add_scalar(tag, value, row["step"])
        except OSError as e:
            self._stopped(e)

    def warn(self, msg: str) -> None:
        pass  # the display tells the user

    def image(self, tag: str, path: Path, step: int) -> None:
        if self.writer is None:
            return
        from PIL import Image

        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
            self.writer.add_image(tag, pixels, step, dataformats="HWC")
        except OSError as e:
            self._stopped(e)

    def close(self) -> None:
        """Flush and close the event file: at the end, on an interrupt or an error alike."""
        if self.writer is None:
            return
        try:
            self.writer.close()
        except OSError as e:
            self._stopped(e)
        self.writer = None

    def _stopped(self, e: OSError) -> None:
        self.writer = None
        if self._warn is not None:
            self._warn(f"TensorBoard events no longer written: {e}")
