"""Training the router: the model (encoder + head), the data module, fit, and the optuna study."""
