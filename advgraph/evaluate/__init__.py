"""Evaluation: Parzen-window log-likelihood, nearest training examples, Figure 1 theory checks."""
