"""Prefect flows: thin wrappers that schedule aire's engine steps as flow runs and tasks."""
