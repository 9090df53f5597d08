"""The fast transport: HTTP/1.1 on asyncio Protocols and llhttp."""
