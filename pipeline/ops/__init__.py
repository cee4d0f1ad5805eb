"""Pure numeric kernels (numpy + numba only; no torch, no files, no globals).

Each kernel has a plain-numpy reference that its tests compare against.
"""
