"""A local WeChat (SPEC W5): the subset of WeChat's HTTP APIs Siyu uses, with the real request and response
shapes, signatures, AES message encryption, WeChat Pay v3 signing and error codes, plus switchable faults.

It is WeChat's side of the wire, so it imports nothing of Siyu (checked by import-linter) and implements
the protocols itself rather than with the SDKs Siyu uses: conformance tests then mean something.
Run it with ``siyu wechat_sim`` (or ``python -m siyu.wechat_sim``); tests start it in a thread.
"""
