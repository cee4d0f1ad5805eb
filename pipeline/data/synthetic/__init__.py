"""Synthetic datasets: the Carvana-layout demo cars (``cars``) and comma10k-style driving frames
(``driving`` with its painter, objects and scenery)."""
