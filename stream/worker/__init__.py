"""The Faust worker: app composition, stage 1 (encode) and stage 2 (apply), HTTP views."""
