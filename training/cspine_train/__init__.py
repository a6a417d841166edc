"""cspine training recipe: the four stages of the hierarchical landmark pipeline."""
