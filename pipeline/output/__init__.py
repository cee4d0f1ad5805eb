"""Submission outputs: formats (RLE CSVs, mask PNGs), streaming writers with sidecar and ledger,
and the checks that validate a written submission."""
