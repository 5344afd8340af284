"""The `nnparity` command line: one module per command under nnparity.commands, and the verify tool
(nnparity.verify: its torch-free part; nnparity.verify.autograd: its autograd part).

Layers and the one direction of their imports: scratch (NumPy, the network) <- torch_ref (the
torch.nn oracle, Lightning) <- nnparity (this CLI and the verify tool). A command module imports
torch only inside ``run``, so commands and backends that need no torch (``train --backend
scratch``, every ``--help``) work without it.
"""
