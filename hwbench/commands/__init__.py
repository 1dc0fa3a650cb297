"""Sub-commands beyond the core ones in :mod:`hwbench.cli`, one module each.

A module here defines click commands and lists them in ``COMMANDS``; the CLI registers
every module it finds in this folder, so adding a command is one new file. Keep imports
of heavy libraries (torch, pandas, scipy) inside the command functions: every module
here is imported each time ``hwbench`` starts.
"""
