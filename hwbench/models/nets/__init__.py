"""The torch side of the reference models: ``nn.Module`` classes, synthetic batches and
losses, one module per family.

Only a family's ``build`` / ``make_batch`` / ``loss`` import these, so that
``import hwbench.models`` (the registry and every family's metadata) stays torch-free.
"""
