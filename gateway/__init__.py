"""The aiohttp gateway: answers HTTP, stores webhooks durably, routes work to the actors."""
