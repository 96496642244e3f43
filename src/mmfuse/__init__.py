"""mmfuse."""
