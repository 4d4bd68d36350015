"""Training the seed methods on this machine: data from train splits only, dev for model selection."""
