"""Hydra plugin of mmfuse: the user's config folders searched before mmfuse's own (see mmfuse.configs)."""
