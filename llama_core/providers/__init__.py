"""Providers: the code that serves each API, one module per provider under `providers/<api>/`.

A provider is a plain class named by a row of llama_core.distributions. A Stack constructs it as
`Class(config)`, or `Class(config, stack)` when its row lists `api_dependencies` (it then reaches the
APIs it builds on through `stack.api(name)`), and enters it with `async with` if it is an async
context manager: start workers, open files and clients in `__aenter__`, release them in
`__aexit__`. Its methods are those of its API's Protocol in llama_core.apis.

Non-goals: no plugin discovery, no `get_provider_impl` factories, no provider registry beyond the
table in llama_core.distributions.
"""
