"""From probabilities to decisions: the probability store, the exact threshold search, mask
clean-up, ensemble weights and binarisation (``blend``), and pseudo-label selection."""
