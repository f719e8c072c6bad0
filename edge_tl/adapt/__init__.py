"""Adapting a bundle to a new camera: its harvested tracks labelled by a person
(`labels`), then a head retrained on them beside the original data (`retrain`)."""
