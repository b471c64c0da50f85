"""The cube: the model and the facade over a storage backend."""
