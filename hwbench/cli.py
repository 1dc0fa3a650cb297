"""The command line: the ``hwbench`` group, which wires the commands of
:mod:`hwbench.commands` (one module each). User errors become one line on stderr and
exit code 2."""

from __future__ import annotations

import sys

import click

from .errors import UserError
from .report.text import clean


class _Group(click.Group):
    """Maps UserError to a one-line message and exit code 2 for every command."""

    def invoke(self, ctx):
        import errno

        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"hwbench: error: {clean(e)}", err=True)
            ctx.exit(2)
        except OSError as e:
            # a path argument longer than the filesystem allows fails in the first stat()
            # of whatever reads it; always the user's path, never a bug of ours
            if e.errno != errno.ENAMETOOLONG:
                raise
            name = str(e.filename or "")
            click.echo(f"hwbench: error: {clean(name[:60] + '...' if len(name) > 60 else name)}: "
                       f"file name too long", err=True)
            ctx.exit(2)


@click.group(cls=_Group, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hwbench")
@click.pass_context
def cli(ctx) -> None:
    """hwbench: hardware-aware benchmarks for deep learning (speed and energy)."""
    if ctx.invoked_subcommand is None:
        # pip's convention: no command prints the help once and exits 0
        click.echo(ctx.get_help())
        ctx.exit(0)


def _drop_bad_terminal_size() -> None:
    """$COLUMNS / $LINES that are not plain ASCII digits ('²' passes str.isdigit and
    fails int(), in rich as elsewhere) are ignored, as an unset one is."""
    import os

    for name in ("COLUMNS", "LINES"):
        v = os.environ.get(name)
        if v is not None and not (v.isascii() and v.isdigit()):
            del os.environ[name]


def _journal_warnings_on_one_line() -> None:
    """What a reader dropped from a results journal (hwbench.journal.JournalWarning)
    prints as ``hwbench: warning: ...``, as the commands' own warnings do."""
    import warnings

    plain = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        from .journal import JournalWarning  # imported by then: it raised the warning

        if issubclass(category, JournalWarning):
            return f"hwbench: warning: {clean(str(message))}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = fmt


def main(argv: list[str] | None = None) -> None:
    """The console script: usage errors are one line and exit code 2, like UserError."""
    _drop_bad_terminal_size()
    _journal_warnings_on_one_line()
    try:
        rc = cli.main(args=argv, prog_name="hwbench", standalone_mode=False)
    except click.UsageError as e:
        hint = f" (see: hwbench {e.ctx.info_name if e.ctx and e.ctx.parent else ''} --help)".replace("  ", " ")
        click.echo(f"hwbench: error: {clean(e.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"hwbench: error: {clean(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("hwbench: interrupted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)



def _register_command_modules() -> None:
    """Every module of hwbench/commands/ adds its ``COMMANDS`` (see that package)."""
    import importlib
    import pkgutil

    from . import commands

    for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{commands.__name__}.{m.name}")
        for command in getattr(mod, "COMMANDS", ()):
            cli.add_command(command)


_register_command_modules()


if __name__ == "__main__":  # pragma: no cover
    main()
