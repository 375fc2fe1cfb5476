"""The model store: a published model (``manifest.json`` + files under an S3 prefix) made local and verified.

``warm`` orchestrates; ``manifest`` says what was published; ``s3`` talks to S3 and explains its errors;
``download`` fetches and hashes; ``cache`` keeps verified copies in MODEL_DIR; ``errors`` names every cause.
"""
