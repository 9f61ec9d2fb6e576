"""Local HTTP fakes of the internet services the support service talks to.

* :mod:`fakes.graph_api` - Meta WhatsApp Cloud API (Graph API ``/messages``) plus
  signed status webhooks.
* :mod:`fakes.openrouter` - OpenRouter ``/api/v1/chat/completions``.
* :mod:`fakes.server` - runs either fake's ``aiohttp`` app on an ephemeral port.

They speak the real wire formats so production code reaches them through its
normal HTTP clients, only with a different base URL. Submodules are not
re-exported here on purpose: ``python -m fakes.graph_api`` would otherwise import
the module twice (once via this package) and warn.
"""
