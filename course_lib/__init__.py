"""Large Language Models from scratch: the reference implementation the chapters import."""
