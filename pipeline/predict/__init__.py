"""Prediction components: flip TTA merged in probability space, fold-model ensembles per image."""
