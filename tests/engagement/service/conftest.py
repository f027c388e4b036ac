"""The WeChat simulator fixtures for the service tests."""

from tests.wechat.conftest import official_app, wechat_app_factory, wechat_sim, work_app  # noqa: F401 - fixtures
from tests.wechat.work_fixtures import immediate_tasks  # noqa: F401 - fixture
