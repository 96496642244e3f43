"""Beyond accuracy: the cost of a model (complexity) and, later, its robustness."""
