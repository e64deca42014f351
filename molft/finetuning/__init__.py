"""Fine-tuning a (pretrained) encoder on a user's assay, and predicting with the result."""
