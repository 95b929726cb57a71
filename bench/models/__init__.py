"""Model families: every module here registers its models on import (`registry.discover`)."""
