"""``python -m bench``: one run that measures the encoder, the per-event CPU work around it and the whole pipeline.

Absolute numbers drift on shared machines, so every run reports ratios measured in that same run
(pipeline vs raw encoder, length-bucketed vs naive batching) next to the machine it ran on.
"""
