"""What users' schedule rows may name (``SchedulePolicy``), without a store."""

from __future__ import annotations

import pytest

from jupyter_mlplat.errors import InvalidSpecError
from jupyter_mlplat.hub.schedules import SchedulePolicy, check_notebook_path
from jupyter_mlplat.hub.service import ServiceSettings


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6 (unique local)
    "http://127.0.0.1:8081/hub/api", "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.2/",
    "http://0.0.0.0/", "http://metadata.google.internal/", "http://hub.internal/",
    "http://printer.local/", "http://a.localhost/",
])
def test_webhooks_to_internal_addresses_are_refused_by_default(url):
    with pytest.raises(InvalidSpecError, match="public"):
        SchedulePolicy().check_webhook(url)


def test_a_name_is_checked_by_what_it_resolves_to():
    private = SchedulePolicy(resolve=lambda host: ["10.0.0.5"])
    with pytest.raises(InvalidSpecError, match="resolves to\\) 10.0.0.5"):
        private.check_webhook("https://hooks.example.org/x")
    SchedulePolicy(resolve=lambda host: ["93.184.215.14"]).check_webhook(
        "https://hooks.example.org/x")

    def unknown(host: str) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(InvalidSpecError, match="cannot be resolved"):
        SchedulePolicy(resolve=unknown).check_webhook("https://nowhere.example.org/")


def test_an_allow_list_admits_only_its_hosts_even_internal_ones():
    policy = SchedulePolicy(webhook_hosts=frozenset({"alerts.corp", "*.slack.com"}))
    policy.check_webhook("https://alerts.corp/x")  # the operator chose it: no lookup
    policy.check_webhook("https://hooks.slack.com/services/T/B/X")
    for url in ("https://evil.example.org/", "http://169.254.169.254/",
                "https://slack.com.evil.org/"):
        with pytest.raises(InvalidSpecError, match="not allowed by the store service"):
            policy.check_webhook(url)


def test_kernels_come_from_the_services_list():
    policy = SchedulePolicy(kernels=frozenset({"team-py"}))
    assert policy.check({"kernel_name": "team-py"})["kernel_name"] == "team-py"
    assert policy.check({"kernel_name": None})["kernel_name"] is None
    with pytest.raises(InvalidSpecError, match="choose one of team-py"):
        policy.check({"kernel_name": "python3"})


def test_notebook_paths_stay_inside_the_owners_root():
    assert check_notebook_path("a/./b//c.ipynb") == "a/b/c.ipynb"
    for bad in ("/abs.ipynb", "C:\\x.ipynb", "..\\x.ipynb", "a/../../x.ipynb", "", 5):
        with pytest.raises(InvalidSpecError):
            check_notebook_path(bad)


def test_service_settings_from_the_environment():
    settings = ServiceSettings.from_env({
        "MLPLAT_SERVICE_KERNELS": "python3, team ", "MLPLAT_SERVICE_WEBHOOK_HOSTS": "",
        "MLPLAT_SERVICE_MAX_CALL_SIZE": "1024"})
    assert settings.kernels == {"python3", "team"} and settings.webhook_hosts == frozenset()
    assert settings.max_call_size == 1024
    assert ServiceSettings.from_env({}).kernels == {"python3", "mlplat-python3"}
    with pytest.raises(InvalidSpecError, match="MLPLAT_SERVICE_MAX_UPLOAD_SIZE"):
        ServiceSettings.from_env({"MLPLAT_SERVICE_MAX_UPLOAD_SIZE": "lots"})
