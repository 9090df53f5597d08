"""One table of options (asyncfetch/_options.py): every option of fetch, enqueue and worker,
every library keyword and every option stored with a Redis job is an entry of it, and
what the user sees (``--help``, help(Fetcher), a worker's settings) shows its values."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import redis
import trustme

from asyncfetch import ConfigError, Fetcher, RetryPolicy, Settings, fetch_to_file
from asyncfetch._api import make_settings
from asyncfetch._options import (
    EnqueueOptions,
    JobOptions,
    Option,
    RunOptions,
    WorkerOptions,
    options_of,
    run_options_for,
)
from asyncfetch._settings import DEFAULT_RETRY_STATUSES, DEFAULT_USER_AGENT, settings_from
from asyncfetch.cli.distributed import enqueue_command, worker_command
from asyncfetch.cli.fetch import fetch_command
from asyncfetch.queues.redis.jobs import JobKeys

from .cli_helpers import run_cli
from .redis_server import running_redis

COMMANDS: dict[str, tuple[click.Command, list[Option[Any]]]] = {
    "fetch": (fetch_command, run_options_for("fetch")),
    "enqueue": (
        enqueue_command,
        [*options_of(JobOptions), *options_of(EnqueueOptions), *run_options_for("enqueue")],
    ),
    "worker": (
        worker_command,
        [*options_of(JobOptions), *options_of(WorkerOptions), *run_options_for("worker")],
    ),
}


# click's "no default given" (click 8.3 and later), as None and () are.
_UNSET = getattr(click.core, "UNSET", None)


def _blank(value: object) -> object:
    return None if value is _UNSET or value in ((), None) else value


def _click_entries(table: list[Option[Any]]) -> list[tuple[Option[Any], list[str], str]]:
    """Each click option a table entry makes: (entry, spellings, help); an entry with
    ``flag_values`` makes one per flag (curl's --http1.1 and --http2)."""
    entries = []
    for option in table:
        if option.flag_values:
            entries += [(option, [flag], text) for flag, _value, text in option.flag_values]
        else:
            spellings = [spelling for flag in option.flags for spelling in flag.split("/")]
            entries.append((option, spellings, option.help))
    return entries


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_click_option_is_a_table_entry_and_each_entry_an_option(name: str) -> None:
    command, table = COMMANDS[name]
    params = [p for p in command.params if isinstance(p, click.Option)]
    context = click.Context(command)
    entries = _click_entries(table)
    assert [p.name for p in params] == [option.name for option, _flags, _help in entries]
    for param, (option, spellings, text) in zip(params, entries, strict=True):
        assert [*param.opts, *param.secondary_opts] == spellings
        assert param.help == text
        if option.flag_values:
            assert param.flag_value in option.choices
            continue
        shown = param.get_default(context, call=False)
        assert _blank(shown) == _blank(option.default), option.name
        assert (param.multiple, param.metavar, param.envvar) == (
            option.multiple,
            option.metavar,
            option.envvar,
        )
        assert tuple(getattr(param.type, "choices", ())) == option.choices
        assert getattr(param.type, "min", None) == option.minimum
        assert getattr(param.type, "max", None) == option.maximum


def test_enqueue_takes_every_stored_option() -> None:
    stored = [option for option in options_of(RunOptions) if option.stored]
    assert stored, "no option is stored: the test tests nothing"
    assert all("enqueue" in option.commands for option in stored)


def test_settings_defaults_are_the_tables() -> None:
    assert settings_from({}) == Settings() == make_settings()
    built = settings_from({o.name: o.default for o in options_of(RunOptions)})
    assert built == Settings()
    assert built.retry.statuses == DEFAULT_RETRY_STATUSES
    assert built.transport.user_agent == DEFAULT_USER_AGENT
    assert Settings().limits.concurrency == RunOptions.concurrency.default
    assert Settings().body.max_body == RunOptions.max_body.default


def test_a_table_value_reaches_its_settings_field() -> None:
    values = {"per_host_rate": 2.5, "connect_timeout": 1.5, "save_names": "url"}
    values |= {"retry_on": "418", "cacert": None, "dns_servers": ("127.0.0.1:53",)}
    built = settings_from(values)
    assert built.limits.per_host_rate == 2.5
    assert built.timeouts.connect == 1.5
    assert built.body.save_names == "url"
    assert built.retry.statuses == frozenset({418})
    assert built.transport.dns_servers == ("127.0.0.1:53",)


def test_every_library_keyword_is_an_entry_with_its_default() -> None:
    keywords = {o.keyword: o for o in options_of(RunOptions) if o.keyword is not None}
    fetcher = inspect.signature(Fetcher).parameters
    assert set(fetcher) - {"settings"} == set(keywords)
    for name, parameter in fetcher.items():
        if name != "settings":
            assert parameter.default == keywords[name].keyword_default, name
    settings_keywords = set(inspect.signature(make_settings).parameters)
    assert settings_keywords == set(keywords) - {"engine", "headers"}
    # The module function: the method's own keywords and the Fetcher's settings, once each.
    method = set(inspect.signature(Fetcher.fetch_to_file).parameters) - {"self"}
    assert set(inspect.signature(fetch_to_file).parameters) == method | settings_keywords


def test_a_section_and_one_of_its_keywords_are_refused_together() -> None:
    with pytest.raises(ConfigError, match=r"give retry_on inside the RetryPolicy \(statuses"):
        make_settings(retries=RetryPolicy(retries=1), retry_on="429")
    timeouts = make_settings(timeouts=5).timeouts
    assert (timeouts.total, timeouts.connect) == (5, RunOptions.connect_timeout.default)


async def test_enqueue_stores_exactly_the_stored_options(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a\n")
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    with running_redis(tmp_path / "redis") as server:
        done = await run_cli(
            "enqueue", str(urls), "--redis", server.url, "--job", "table",
            "--per-host-rate", "2.5", "--no-adapt", "--cacert", str(ca_file), "-H", "X-A: 1",
        )  # fmt: skip
        assert done.code == 0, done.stderr
        client = redis.Redis.from_url(server.url)
        try:
            stored = orjson.loads(client.get(JobKeys("table").options) or b"null")
        finally:
            client.close()
    assert set(stored) == {option.name for option in options_of(RunOptions) if option.stored}
    assert (stored["per_host_rate"], stored["adapt"]) == (2.5, False)
    assert stored["cacert"] == str(ca_file)  # a path stored as text
    assert stored["retries"] == RunOptions.retries.default


@pytest.mark.parametrize("command_name", ["report", "status", "collect"])
def test_the_job_options_of_every_command_are_the_tables(command_name: str) -> None:
    from asyncfetch.cli import collect, report, status

    command = {
        "report": report.report_command,
        "status": status.status_command,
        "collect": collect.collect_command,
    }[command_name]
    params = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for option in options_of(JobOptions):
        assert params[option.name].opts == list(option.flags)
        assert params[option.name].metavar == option.metavar
    assert params["job"].help == JobOptions.job.help
    # Only where the job is one of two ways to name the records is it optional.
    assert params["job"].required is (command_name == "collect")


async def test_fetch_help_shows_the_tables_defaults() -> None:
    done = await run_cli("fetch", "--help")
    assert done.code == 0, done.stderr
    text = " ".join(done.stdout.decode().split())
    for option in (RunOptions.concurrency, RunOptions.max_body, RunOptions.engine):
        after = text[text.index(option.flags[-1]) :]
        shown = re.search(r"\[default: ([^;\]]+)", after)
        assert shown is not None and shown.group(1) == str(option.default), option.name
    assert f"(default {DEFAULT_USER_AGENT})" in text
    assert "default: 429,500,502,503,504" in text
