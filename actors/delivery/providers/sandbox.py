"""The sandbox provider: the Cloud API client pointed at the local Graph API fake.

With no WhatsApp credentials the service still sends, to a fake that records each
message so the dashboard and `/sandbox/_fake/messages` show what would have gone out.
"""

SANDBOX_TOKEN = "sandbox-token"
