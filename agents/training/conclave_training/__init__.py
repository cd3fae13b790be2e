"""Conclave training pipeline (Python side of issue #6).

Modules:
- traces: load the real load traces under simulations/traces/, resample them to a
  1-minute series, and digest the training files;
- synthetic: seeded synthetic load (diurnal + weekly seasonality, noise, flash crowds);
- scaler_features: the scaler forecast model's feature definition (the single spec
  that Rust implements too; see agents/models/scaler.features.json);
- breaker_features: the breaker risk model's features and label, and reading simulator
  recordings (see agents/models/breaker.features.json);
- router_features: the router latency model's features, label (a backend's cost over the
  next minute) and the rule's EWMA baseline (see agents/models/router.features.json).
"""
