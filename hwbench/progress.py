"""The progress display of ``hwbench run`` (a :class:`hwbench.runner.Reporter`)."""

from __future__ import annotations

from .report.text import clean, literal


class TerminalReporter:
    """The progress display (runner.Reporter): cases done / total, the current case,
    elapsed time and an ETA, on one line of a terminal. Output that is not a terminal
    (CI logs, pipes) gets a plain progress line at most every 30 s instead. Failed cases
    are always said; with ``verbose`` every case's numbers and flags too."""

    PIPE_EVERY_S = 30.0

    def __init__(self, con, verbose: bool = False, settings=None):
        import time

        self.con = con
        self.verbose = verbose
        self.settings = settings
        self.total = 0
        self.done = 0
        self.done_here = 0  # cases finished by this process (not those a resume kept)
        self.current = ""
        self.t0 = time.monotonic()
        self.first_case_t: float | None = None
        self.last_line = time.monotonic()
        self.progress = None
        self.task = None
        self._started = False

    # -- estimates
    def eta_s(self) -> float | None:
        import time

        left = max(0, self.total - self.done)
        if self.done_here and self.first_case_t is not None:
            return left * (time.monotonic() - self.first_case_t) / self.done_here
        if self.settings is not None:
            from .report.plan import estimate_case_s

            return left * estimate_case_s(self.settings)
        return None

    def status_text(self) -> str:
        import time

        from .report.plan import clock

        eta = self.eta_s()
        return (f"{self.done}/{self.total}, {clock(time.monotonic() - self.t0)} elapsed"
                + (f", ETA ~{clock(eta)}" if eta is not None else ""))

    # -- runner.Reporter
    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._started = True
        if self.con.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn
            from rich.table import Column as RichColumn

            outer = self

            class _Status(TextColumn):
                def render(self, task):  # noqa: ARG002
                    from rich.text import Text

                    return Text(outer.status_text())

            self.progress = Progress(
                BarColumn(bar_width=20), _Status(""),
                TextColumn("{task.fields[case]}", markup=False,
                           table_column=RichColumn(no_wrap=True, overflow="ellipsis", ratio=1)),
                console=self.con, transient=True, expand=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("running", total=total, completed=done, case="")

    def grow(self, n: int) -> None:
        self.total += n
        if self.progress is not None:
            self.progress.update(self.task, total=self.total)

    def case_started(self, case) -> None:
        import time

        if self.first_case_t is None:
            self.first_case_t = time.monotonic()
        what = f"{case.case_id}: searching the batch limit" if case.auto_batch else case.case_id
        self.current = clean(what)
        if self.progress is not None:
            self.progress.update(self.task, case=self.current)

    def _print(self, text, style: str | None = None) -> None:
        con = self.progress.console if self.progress is not None else self.con
        con.print(literal(text) if isinstance(text, str) else text, style=style)

    def case_done(self, result) -> None:
        import time

        if result is None:  # an auto batch search, replaced by its cases
            return
        self.done += 1
        self.done_here += 1
        if result.status not in ("ok", "skipped"):
            self._print(f"{result.status} {result.case_id}: {result.reason[:300]}", style="red")
        if self.verbose:
            for line in self._details(result):
                self._print(line, style="yellow" if line.startswith("    ") else None)
        if self.progress is not None:
            self.progress.advance(self.task)
        elif time.monotonic() - self.last_line >= self.PIPE_EVERY_S and self.done < self.total:
            self.last_line = time.monotonic()
            from .report.fit import cut

            self._print(cut(clean(f"[{self.status_text()}] {result.case_id}"), self.con.width, middle=True))

    def _details(self, result) -> list[str]:
        """-v: the case's headline numbers and every flag with its detail."""
        from .analysis.stats import latency_stats_ms, noise_flag
        from .report import format as fm

        head = f"{result.status:<7} {result.case_id}"
        flags = [(f.flag, f.detail) for f in result.flags]
        m = result.measurement
        if m is not None:
            st = latency_stats_ms(m.raw_times_s)
            p50 = st.get("latency_ms_p50")
            if p50:
                bs = result.case.batch_size
                head += f"  p50 {fm.duration_ms(p50)}  {fm.rate(bs / (p50 / 1e3))} samples/s"
                head += f"  IQR/p50 {fm.percent(st['latency_iqr_rel'])}"
            threshold = getattr(self.settings, "noise_threshold", 0.1) if self.settings is not None else 0.1
            noisy = noise_flag(st, threshold)
            if noisy:
                flags.append(("noisy", noisy))
        if result.energy is not None:
            est = "~" if result.energy.energy_source == "estimated" else ""
            head += f"  energy {est}{fm.energy_j(result.energy.energy_j)} ({result.energy.energy_source})"
        return [head, *(f"    {f}: {d}" for f, d in flags)]

    def message(self, text: str) -> None:
        self._print(f"note: {text}" if self._started or not text.endswith("...") else text, style="yellow")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, case="")
            self.progress.stop()
            self.progress = None
        self._started = False
