from tests.kubeapi.fixtures import kubeapi

__all__ = ["kubeapi"]
