"""Extractive question answering on AWS Lambda: the serving package (all the image holds).

Init: ``settings`` (env) -> ``store`` (S3 -> /tmp, verified) -> ``engine`` (``tokenization``, a backend from
``backends`` chosen through ``variants``, ``decoding``), glued by ``runtime``. Each invocation: ``app`` ->
``api`` (``events`` shape -> ``http`` or ``direct``, ``errors``) -> ``service`` (limits, time budget) ->
``engine``; ``contract`` holds the request and response models that api and service share. Publishing and
export tooling lives apart, in ``qa_tools`` (not in the image).
"""
