"""Development and operations tools: local broker, feeds, test model, evaluation. Not imported by the worker."""
