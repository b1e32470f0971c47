"""The `remote` provider of every API: another llama-toolchain server does the work.

Each method sends its request to the stack at `config.url` through llama_core.client.StackClient
and returns its answer: streams pass through chunk by chunk, and the other server's errors come back
as the same exception classes (a 404 there is a 404 here), except where the fault is ours toward it
(`upstream_error`): its 401 means our `api_key` for it is wrong, and its 500 is its failure, both a
ProviderError (502) naming it. A stack that cannot be reached is an UnavailableError (503). The
caller's provider data (X-LlamaStack-ProviderData) goes along, so a vendor key sent here reaches the
stack that talks to the vendor; no message repeats a key (llama_core.redact).

    [providers.inference]
    provider_id = "remote"
    url = "http://gpu-box:5000"
    api_key = "..."            # if that stack runs with --api-key

Non-goals: no retries (a chat is not ours to repeat), no load balancing over several urls.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from llama_core.apis import AgenticSystem, Inference, Memory, Safety
from llama_core.client import StackClient
from llama_core.config import RemoteStackConfig
from llama_core.errors import AuthenticationError, LlamaError, ProviderError
from llama_core.providers.provider_data import HEADER, encoded_provider_data
from llama_core.redact import known_secrets, redact

if TYPE_CHECKING:
    import httpx


def protocol_methods(protocol: type) -> list[str]:
    """The public method names of an API Protocol, in definition order."""
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def _forward(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: RemoteProvider, request: Any) -> Any:
        return await getattr(self.client, name)(request)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"`{name}` of the stack at `config.url`."
    return method


def upstream_error(url: str, error: LlamaError, secrets: set[str]) -> LlamaError:
    """What an error answered by the stack at `url` is here: its 401 (our key toward it) and its
    500 (its failure) a ProviderError naming it; any other as it was. Messages redacted of `secrets`."""
    url = redact(url, secrets)
    if isinstance(error, AuthenticationError):
        return ProviderError(
            f"The stack at {url} answered 401 Unauthorized: check the api_key of the remote provider in the run config."
        )
    message = redact(error.message, secrets)
    if type(error) is LlamaError:  # a 500 there, or a status our tree has no class for
        return ProviderError(f"The stack at {url} failed: {message}")
    if message != error.message:
        error.message, error.args = message, (message,)
    return error


def forwarding_transport() -> httpx.AsyncBaseTransport:
    """An httpx transport that adds the current request's provider data header to each request."""
    import httpx

    class ForwardProviderData(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            data = encoded_provider_data()
            if data is not None:
                request.headers[HEADER] = data
            return await super().handle_async_request(request)

    return ForwardProviderData()


class RemoteProvider:
    """Base of the remote providers: a StackClient open while the provider is entered."""

    api_protocol: type

    def __init_subclass__(cls, *, protocol: type, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.api_protocol = protocol
        for name in protocol_methods(protocol):
            setattr(cls, name, _forward(name))

    def __init__(self, config: RemoteStackConfig) -> None:
        self.config = config
        self._client: StackClient | None = None

    @property
    def client(self) -> StackClient:
        assert self._client is not None, f"use `async with {type(self).__name__}(...)` first"
        return self._client

    async def __aenter__(self) -> RemoteProvider:
        self._client = StackClient(
            self.config.url, api_key=self.config.api_key, transport=forwarding_transport(), translate=self._upstream_error
        )
        return self

    def _upstream_error(self, error: LlamaError) -> LlamaError:
        return upstream_error(self.config.url, error, known_secrets(self.config))

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RemoteInference(RemoteProvider, protocol=Inference):
    """apis.Inference of another stack."""

    async def served_models(self) -> list[str]:
        """What the other stack serves, by its /models/list."""
        from llama_core.types.models import ModelsListRequest

        return [m.descriptor for m in await self.client.list_models(ModelsListRequest())]


class RemoteSafety(RemoteProvider, protocol=Safety):
    """apis.Safety of another stack."""


class RemoteMemory(RemoteProvider, protocol=Memory):
    """apis.Memory of another stack."""


class RemoteAgenticSystem(RemoteProvider, protocol=AgenticSystem):
    """apis.AgenticSystem of another stack."""
