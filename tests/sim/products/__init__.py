"""Product handlers. Importing this package registers every handler with `cloud.HANDLERS`."""

from . import (confluence_attachments, confluence_cloud, confluence_dc, confluence_pages,  # noqa: F401
               jira_cloud, jira_dc, jira_edit, jira_issues, jira_remote_links, jira_webhooks)
