"""Experiment trackers: MLflow (`logger=mlflow`)."""
