"""The `nnparity` command line: one module per command under nnparity.commands, and the verify tool
(nnparity.verify: its torch-free part; nnparity.verify.autograd: its autograd part).

Layers and the one direction of their imports: scratch (NumPy, the network) <- torch_ref (the
torch.nn oracle, Lightning) <- nnparity (this CLI and the verify tool). A command module imports
torch only inside ``run``, so commands and backends that need no torch (``train --backend
scratch``, every ``--help``) work without it.
"""

import os as _os
import sys as _sys

try:
    import resource as _resource
except ImportError:   # not on POSIX
    _resource = None

# Under a file size limit (ulimit -f) Python writes bytecode caches cut at the limit, which break
# every later import of the module: none is written then, here or in the commands' child processes.
if _resource is not None and _resource.getrlimit(_resource.RLIMIT_FSIZE)[0] != _resource.RLIM_INFINITY:
    _sys.dont_write_bytecode = True
    _os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
