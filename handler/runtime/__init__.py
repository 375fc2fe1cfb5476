"""Runtime glue: what happens once per execution environment (init), apart from what each invocation does."""
