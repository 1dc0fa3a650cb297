"""Every ``hwbench`` command, one module each (asv's ``commands/`` is the model);
:mod:`hwbench.cli` only wires them. :mod:`.output` holds the terminal helpers they share.

A module here defines click commands and lists them in ``COMMANDS``; the CLI registers
every module it finds in this folder, so adding a command is one new file. Keep imports
of heavy libraries (torch, pandas, scipy) inside the command functions: every module
here is imported each time ``hwbench`` starts.
"""
