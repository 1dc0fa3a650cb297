"""``hwbench compact``: fold a results file's journal into the file (docs/results.md)."""

from __future__ import annotations

import click

from ..report.text import clean


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
def compact(results: tuple[str, ...]) -> None:
    """Write the cases of each RESULTS file's journal (RESULTS.journal, left by a run
    that was killed or could not finish writing) into the file and remove the journal.
    Readers merge a journal themselves; this makes the file whole, for archiving or
    for tools that read the JSON. A run still writing the file is refused; a killed
    run's file is marked interrupted. A file without a journal is left as it is."""
    from ..api import resume_target
    from ..errors import ResultsError
    from ..journal import compact as compact_file
    from ..journal import journal_path
    from ..results import locked, read_record

    for name in results:
        path = resume_target(name)
        if not journal_path(path).exists():
            read_record(path)  # a path that is no results file is still an error
            click.echo(f"{clean(name)}: no journal; nothing to compact")
            continue
        warnings: list[str] = []
        with locked(path):  # refused while a run writes it
            rec = read_record(path, warnings.append)
            for w in warnings:
                click.echo(f"hwbench: warning: {clean(w)}", err=True)
            try:
                compact_file(path, rec)
            except OSError as e:
                raise ResultsError(f"{name}: cannot write the results file: {e.strerror or e}") from None
            rec = read_record(path)
        click.echo(f"{clean(name)}: compacted: {len(rec.cases)} cases, status {rec.status}")


COMMANDS = [compact]
