"""Product handlers. Importing this package registers every handler with `cloud.HANDLERS`."""

from . import confluence_cloud, confluence_dc, jira_cloud, jira_dc  # noqa: F401
