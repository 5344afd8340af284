"""nnparity's oracle: the spec built from torch.nn's own modules, trained by torch and Lightning."""
