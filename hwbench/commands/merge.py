"""``hwbench merge``: join the parts of a multi-node run into one results file."""

from __future__ import annotations

import click


@click.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The merged results file to write (refused if it exists).")
def merge(parts: tuple[str, ...], out: str) -> None:
    """Join the PARTS (files, or folders holding them) of one multi-node run
    (hwbench run --nnodes) into one results file. Readers (report, compare,
    load_results) join parts themselves; this writes the joined record once, for
    archiving or for tools that read one file."""
    from ..errors import UserError
    from ..merge import merge_parts
    from ..results import expand_paths, read_record, write_atomic
    from ..writable import output_file, write_error

    target = output_file(out, "--out", new=True)  # before reading anything
    named, found = expand_paths(list(parts))
    recs = [(p, read_record(p)) for p in named]
    for p in found:
        try:
            recs.append((p, read_record(p)))
        except UserError:
            continue  # a folder may hold other JSON
    parts_only = [(p, r) for p, r in recs if r.node is not None]
    if not parts_only:
        raise UserError(f"{', '.join(parts)}: no part of a multi-node run (files written by hwbench run --nnodes)")
    jobs = sorted({r.node.job_id for _, r in parts_only})
    if len(jobs) > 1:
        raise UserError(f"{', '.join(parts)}: parts of {len(jobs)} multi-node runs ({', '.join(jobs[:4])}); "
                        "merge one run at a time")
    try:
        merged, notes = merge_parts(parts_only)
    except ValueError as e:
        raise UserError(f"multi-node run {jobs[0]}: {e}") from None
    for note in notes:
        click.echo(f"hwbench: warning: {note}", err=True)
    try:
        write_atomic(target, merged)
    except OSError as e:
        raise write_error("--out", out, e) from None
    n_ok = sum(c.status == "ok" for c in merged.cases)
    click.echo(f"{target}: {len(merged.nodes)} of {parts_only[0][1].node.nnodes} nodes, "
               f"{len(merged.cases)} cases ({n_ok} ok), status {merged.status}")


COMMANDS = [merge]
