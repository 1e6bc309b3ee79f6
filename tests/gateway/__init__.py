"""Local stand-in for API Gateway (HTTP API, payload 2.0, JWT authorizer), the Lambda service
(running the real function binaries through the Lambda Runtime API) and EventBridge delivery.

Run: ``.venv/bin/python -m tests.gateway --config FILE`` (see README.md).
"""
