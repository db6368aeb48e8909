"""Kafka plumbing shared by the worker and the tools: topics, clients, security settings."""
