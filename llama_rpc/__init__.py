"""Transports over one route table (llama_core/routes.py): the stack's APIs over HTTP, JSON-RPC and MCP.

    http.py          `create_app(stack)`: the Quart app of every route, /health, /openapi.json
    openai.py        OpenAI-compatible /v1 routes mapped onto inference and models
    openai_types.py  their request bodies
    openapi.py       the OpenAPI 3.1 document, generated from the table
    sse.py           chunk iterators as server-sent events
    errors.py        the one exception -> HTTP status and error body mapping
    serve.py         Hypercorn: bind addresses, serve until shutdown
    jsonrpc.py, mcp.py, stdio.py   JSON-RPC 2.0 and MCP over stdio, from the same table

Non-goals: no business logic (decode, call the core, encode), no routers or plugin discovery, no
TLS, sessions or CORS.
"""
