"""The function's API across event shapes: ``events`` recognises a shape, ``http`` (API Gateway, function URLs)
and ``direct`` (invokes) adapt it to ``handler.contract``, ``errors`` says what a caller sees when it fails."""
