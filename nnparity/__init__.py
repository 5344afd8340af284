"""The `nnparity` command line: one module per command under nnparity.commands.

Layers and the one direction of their imports: scratch (NumPy, the network and the torch-free
half of verify) <- torch_ref (the torch.nn oracle, Lightning, the autograd half of verify) <-
nnparity (this CLI). A command module imports torch only inside ``run``, so commands and
backends that need no torch (``train --backend scratch``, every ``--help``) work without it.
"""
