"""sava: sparse adversarial attacks on video classifiers."""
