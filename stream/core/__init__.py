"""The pure core: profile model, scoring, text, privacy, clustering state. No Kafka, Faust or settings."""
