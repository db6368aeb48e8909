"""Real-time e-commerce user profiles from Kafka events."""

__version__ = "0.1.0"
