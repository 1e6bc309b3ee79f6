"""Python peers of the bridge's create-issue job, for `make bench` (issue 12): what a simple Python
integration written with atlassian-python-api and boto3 does, against the same moto table and the
same Atlassian simulator. `sequential` claims, creates and records one item at a time (exactly-once
per item, as ours); `bulk` batches every step and gives exactly-once up. `pyfunction/` is a Python
Lambda function doing our functions' cold-start work, for the cold-start and memory comparison."""
