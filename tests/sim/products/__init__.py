"""Product handlers. Importing this package registers every handler with `cloud.HANDLERS`."""

from . import confluence_cloud, jira_cloud  # noqa: F401
