"""The torch side of the reference models: ``nn.Module`` classes, synthetic batches and
losses, one module per family, named by the family's ``nets`` field.

Each family module defines ``build(cfg)``, ``make_batch(cfg, batch, shape, device,
dtype)`` and ``loss(output, targets)`` (:data:`hwbench.models.base.NETS_ENTRIES`); a
family's functions of those names forward here, importing the module on first call, so
that ``import hwbench.models`` (the registry and every family's metadata) stays
torch-free.
"""
