"""Provider adapters behind one Protocol; :func:`provider_for` picks the one for a cloud."""

from __future__ import annotations

from collections.abc import Callable

from cloudctl.compute.models import Cloud, CloudKind
from cloudctl.compute.providers.base import CloudProvider
from cloudctl.compute.providers.simulator import SimulatorProvider, SimulatorStore
from cloudctl.core.config import get_settings
from cloudctl.core.db import make_engine
from cloudctl.core.errors import InvalidInput

__all__ = ["provider_for", "register_provider", "simulator_store"]

ProviderFactory = Callable[[Cloud], CloudProvider]
_factories: dict[CloudKind, ProviderFactory] = {}
_stores: dict[str, SimulatorStore] = {}


def register_provider(kind: CloudKind, factory: ProviderFactory) -> ProviderFactory | None:
    """Install the factory for a kind of cloud; returns the one it replaced (tests put it back)."""
    previous = _factories.get(kind)
    _factories[kind] = factory
    return previous


def simulator_store() -> SimulatorStore:
    """The simulator's store for the current settings (one engine per store URL)."""
    url = get_settings().resolved_simulator_url
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = SimulatorStore(make_engine(url))
    return store


def _simulator(cloud: Cloud) -> CloudProvider:
    return SimulatorProvider(simulator_store(), cloud.name, cpu_allocation_ratio=cloud.cpu_allocation_ratio,
                             ram_allocation_ratio=cloud.ram_allocation_ratio,
                             build_seconds=get_settings().simulator_build_seconds)


def _openstack(cloud: Cloud) -> CloudProvider:
    from cloudctl.compute.providers.openstack import OpenStackProvider

    return OpenStackProvider.from_cloud(cloud.connection)


def _kubernetes(cloud: Cloud) -> CloudProvider:
    from cloudctl.compute.providers.kubernetes import KubernetesProvider

    kubeconfig = get_settings().kubeconfig
    return KubernetesProvider.from_kubeconfig(cloud.connection, str(kubeconfig) if kubeconfig else None)


register_provider(CloudKind.SIMULATOR, _simulator)
register_provider(CloudKind.OPENSTACK, _openstack)
register_provider(CloudKind.KUBERNETES, _kubernetes)


def provider_for(cloud: Cloud) -> CloudProvider:
    if not cloud.enabled:
        raise InvalidInput(f"cloud {cloud.name} is disabled", field="cloud")
    factory = _factories.get(cloud.kind)
    if factory is None:
        raise InvalidInput(f"no provider adapter for {cloud.kind.value} clouds in this release", field="cloud")
    return factory(cloud)
