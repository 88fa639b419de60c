"""The deployment as written: compose.yaml, deploy/Dockerfile, deploy/k8s and the migrations.

No container engine runs here, so nothing is started: compose.yaml is checked against the
Compose specification's JSON schema (the copy check-jsonschema ships), the manifests
against Kubernetes' schemas (kubernetes-validate), and every command a service or a probe
runs is parsed by the package's own command lines (taskcore's and flask's click groups,
gunicorn's argument parser, which also imports the app). Every environment variable set
for the product's containers must be one the product reads; third-party images get only
the variables their documentation names. The schema migrations run for real, on a
PostgreSQL schema of each test's own and on SQLite.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from taskcore.history import TRIGRAM_INDEX, create_schema, make_engine
from taskcore.migrations import HISTORY, SchemaAheadError
from webapp.db import models_metadata
from webapp.migrations import WEBAPP

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
#: The clustered variant, used on top of compose.yaml.
CLUSTER = ROOT / "deploy" / "compose.cluster.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

#: The image deploy/Dockerfile builds (compose tags it taskcore:<tag>).
OUR_IMAGE = "taskcore"
#: The uid the image runs as; the manifests' runAsUser.
IMAGE_UID = 10001
#: The oldest Kubernetes the manifests are for (preStop ``sleep`` is on by default from 1.30).
OLDEST_KUBERNETES = "1.30"
#: Variables the product reads besides the TASKCORE_* settings and WEBAPP_* config.
OTHER_PRODUCT_VARIABLES = {
    "DATABASE_URL",  # taskcore.history.database_url(), webapp.db.default_database_url()
    "PROMETHEUS_MULTIPROC_DIR",  # webapp.metrics: gunicorn's processes' counts, summed
}
#: What each third-party image is given, as its documentation names it.
IMAGE_VARIABLES = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "rabbitmq": {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"},
    "grafana/grafana": {"GF_SECURITY_ADMIN_PASSWORD", "GF_USERS_ALLOW_SIGN_UP"},
    "redis": set(),
    "prom/prometheus": set(),
}
#: Programs a service of ours may run (console scripts of the package and its dependencies).
OUR_PROGRAMS = {"taskcore", "flask", "gunicorn", "python"}


# -- reading the files ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def image_name(service: dict[str, Any]) -> str:
    """The image without its tag; ``${VAR:-default}`` stands for its default."""
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(service.get("image", "")))
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def our_services() -> dict[str, dict[str, Any]]:
    """The compose services that run deploy/Dockerfile's image."""
    services = compose()["services"]
    ours = {name: s for name, s in services.items() if image_name(s) == OUR_IMAGE}
    assert len(ours) >= 7, sorted(ours)
    for name, service in ours.items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
    return ours


def argv_of(command: str | list[str]) -> list[str]:
    """A compose command as argv (a string is split like a shell would, without one)."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    return [a.replace("$$", "$") for a in argv]  # compose's escape for a literal $


def shell_commands(script: str) -> list[list[str]]:
    """The programs a small `sh -c` script runs: `;`/`&&`/`||`-separated commands,
    redirections dropped; `[ ... ]` tests are the shell's own and are left out."""
    found = []
    for part in re.split(r";|&&|\|\|", script):
        tokens = shlex.split(part)
        argv: list[str] = []
        skip = False
        for token in tokens:
            if skip:
                skip = False
            elif token in {">", ">>", "2>", "2>&1", "<"}:
                skip = token != "2>&1"
            else:
                argv.append(token)
        if argv and argv[0] != "[":
            found.append(argv)
    return found


def healthcheck_commands(service: dict[str, Any]) -> list[list[str]]:
    test = service.get("healthcheck", {}).get("test")
    if not test:
        return []
    if isinstance(test, str):
        return shell_commands(test.replace("$$", "$"))
    kind, *rest = test
    if kind == "CMD-SHELL":
        return shell_commands(rest[0].replace("$$", "$"))
    assert kind == "CMD", test
    return [argv_of(rest)]


def k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    if document["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return document["spec"]["template"]["spec"]
    return None


def k8s_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod spec, container) for every container and init container of ours."""
    for path, document in k8s_documents():
        spec = pod_spec(document)
        if spec is None:
            continue
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["image"].rsplit(":", 1)[0] == OUR_IMAGE:
                yield f"{path.name}:{container['name']}", spec, container


def probe_commands(container: dict[str, Any]) -> list[list[str]]:
    found = []
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command")
        if command is None:
            continue
        if command[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
            found += shell_commands(command[2])
        else:
            found.append(command)
    return found


def option(argv: list[str], name: str, default: Any = None) -> Any:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in argv."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def seconds(duration: str | int) -> float:
    """A compose duration ("45s", "1m30s") in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def worker_grace_default() -> float:
    from workers.cli import worker

    return next(p.default for p in worker.params if p.name == "grace_period")


# -- commands: parsed by the package itself ------------------------------------------------


def parse_commands(commands: list[list[str]]) -> list[str]:
    """Parse each argv with the program's own parser, running nothing; the errors.

    Runs in a subprocess (tests below): ``flask --app webapp`` and gunicorn import and
    build the app, which must not touch this test process's state.
    """
    from unittest import mock

    import click
    from flask.cli import cli as flask_cli
    from gunicorn import util
    from gunicorn.config import Config

    from workers.cli import cli as taskcore_cli

    errors = []
    groups = {"taskcore": taskcore_cli, "flask": flask_cli}
    for argv in commands:
        program, args = argv[0], argv[1:]
        try:
            if program in groups:
                # Every group and option parses, every value converts; no command runs.
                with mock.patch.object(click.Command, "invoke", lambda self, ctx: None):
                    groups[program].main(args, prog_name=program, standalone_mode=False)
                if program == "taskcore" and option(args, "-A"):
                    from workers.loading import load_app

                    load_app(option(args, "-A"))  # the app it names imports
            elif program == "gunicorn":
                config = Config()
                parsed = config.parser().parse_args(args)
                for name, value in vars(parsed).items():
                    if value is not None and name != "args":
                        config.set(name.lower(), value)  # gunicorn's validators
                (spec,) = parsed.args
                if not callable(util.import_app(spec)):
                    errors.append(f"{argv}: {spec} is not a WSGI app")
            elif program == "python":
                assert args[0] == "-c", argv
                compile(args[1], "<healthcheck>", "exec")
            else:
                errors.append(f"{argv}: {program} is not a program of this package")
        except (click.ClickException, SystemExit, Exception) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else exc
            errors.append(f"{argv}: {type(exc).__name__}: {message}")
    return errors


def run_parse_commands(commands: list[list[str]], tmp_path: Path) -> list[str]:
    env = {
        **os.environ,
        "WEBAPP_SECRET_KEY": "s" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'parse.sqlite3'}",
    }
    code = (
        "import json, sys; from tests.test_deploy import parse_commands; "
        "print(json.dumps(parse_commands(json.load(sys.stdin))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_console_scripts_are_the_packages() -> None:
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["taskcore"] == "workers.cli:main"
    assert scripts["flask"].startswith("flask.cli:")
    assert scripts["gunicorn"].startswith("gunicorn.")
    requires = configparser.ConfigParser()
    requires.read(ROOT / "setup.cfg")
    assert "gunicorn" in requires["options"]["install_requires"]


def test_the_parser_catches_bad_commands(tmp_path: Path) -> None:
    errors = run_parse_commands(
        [
            ["taskcore", "worker", "-A", "webapp.tasks:app", "--metrics-prot", "9100"],
            ["taskcore", "worker", "--concurrency", "many"],
            ["taskcore", "no-such-command"],
            ["flask", "--app", "webapp", "db", "upgrade", "--sideways"],
            ["gunicorn", "--workers=4", "webapp:no_such_factory()"],
            ["celery", "worker"],
            ["taskcore", "worker", "-A", "webapp.tasks:app", "--metrics-port", "9100"],
        ],
        tmp_path,
    )
    assert len(errors) == 6, errors  # all but the last
    assert "--metrics-prot" in errors[0] and "not a program of this package" in errors[5]


def test_every_command_and_probe_parses(tmp_path: Path) -> None:
    commands: list[list[str]] = []
    for service in our_services().values():
        commands.append(argv_of(service["command"]))
        commands += healthcheck_commands(service)
    for _, _, container in k8s_containers():
        commands.append([*container.get("command", []), *container.get("args", [])])
        commands += probe_commands(container)
    assert {c[0] for c in commands} <= OUR_PROGRAMS, {c[0] for c in commands}
    unique = [json.loads(c) for c in sorted({json.dumps(c) for c in commands})]
    assert run_parse_commands(unique, tmp_path) == []


# -- environment variables -------------------------------------------------------------------


def product_variables() -> set[str]:
    """TASKCORE_<field> of Settings, the WEBAPP_<key> config the web app reads (Flask's own
    keys and those its code reads), and the few others."""
    from flask import Flask

    from taskcore.settings import ENV_PREFIX, Settings

    names = {ENV_PREFIX + f.name.upper() for f in fields(Settings)} | OTHER_PRODUCT_VARIABLES
    names |= command_line_variables()
    keys = set(Flask.default_config)
    for path in (ROOT / "webapp").rglob("*.py"):
        text = path.read_text()
        keys |= set(re.findall(r"config(?:\.get|\.setdefault)?\(?\[?\s*\"([A-Z_]+)\"", text))
        # The workloads' settings modules read and list their WEBAPP_* variables by name.
        keys |= set(re.findall(r"\bWEBAPP_([A-Z_]+)\b", text))
    return names | {f"WEBAPP_{key}" for key in keys}


def command_line_variables() -> set[str]:
    """The variables taskcore's click options read (``envvar=``, e.g. TASKCORE_APP)."""
    import click

    from workers.cli import cli

    found: set[str] = set()

    def visit(command: click.Command, ctx: click.Context) -> None:
        for param in command.params:
            envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            found.update(v for v in envvars if v)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    visit(sub, click.Context(sub, parent=ctx, info_name=name))

    visit(cli, click.Context(cli, info_name="taskcore"))
    return found


def environment(service: dict[str, Any]) -> set[str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return {item.split("=", 1)[0] for item in env}
    return set(env)


def test_the_products_containers_get_only_variables_it_reads() -> None:
    known = product_variables()
    assert {"TASKCORE_BROKER_URL", "WEBAPP_SECRET_KEY", "DATABASE_URL"} <= known
    assert "TASKCORE_BROKER_ULR" not in known and "WEBAPP_NOTHING" not in known
    unknown = {}
    for name, service in our_services().items():
        if environment(service) - known:
            unknown[f"compose {name}"] = environment(service) - known
    configmaps = {
        d["metadata"]["name"]: set(d["data"])
        for _, d in k8s_documents()
        if d["kind"] == "ConfigMap"
    }
    for where, _, container in k8s_containers():
        names = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            names |= configmaps[source["configMapRef"]["name"]]
        if names - known:
            unknown[where] = names - known
    assert unknown == {}


def test_third_party_images_get_only_their_documented_variables() -> None:
    for name, service in compose()["services"].items():
        if image_name(service) == OUR_IMAGE:
            continue
        image = image_name(service)
        assert image in IMAGE_VARIABLES, f"{name}: add {image}'s variables to IMAGE_VARIABLES"
        assert environment(service) <= IMAGE_VARIABLES[image], name


def test_the_secret_holds_every_key_the_manifests_read() -> None:
    secrets = {
        d["metadata"]["name"]: set(d["stringData"])
        for _, d in k8s_documents()
        if d["kind"] == "Secret"
    }
    used = set()
    for where, _, container in k8s_containers():
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]], where
                used.add(ref["key"])
    assert (
        used
        == secrets["taskcore"]
        == {
            "WEBAPP_SECRET_KEY",
            "TASKCORE_BROKER_URL",
            "TASKCORE_REDIS_URL",
            "DATABASE_URL",
        }
    )


# -- compose.yaml ----------------------------------------------------------------------------


def test_compose_follows_the_compose_specification(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema"]
        return subprocess.run(
            [*command, "vendor.compose-spec", str(path)], capture_output=True, text=True
        )

    done = check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_perod:"))
    assert check(broken).returncode == 1  # the check is not vacuous


def test_the_clustered_variant_names_every_node_and_sentinel(tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    from taskcore.broker import broker_urls
    from taskcore.redis_clients import sentinel_address
    from taskcore.settings import Settings

    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run([*command, str(CLUSTER)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "compose.cluster.yaml"
    broken.write_text(CLUSTER.read_text().replace("restart: unless", "restrat: unless"))
    assert subprocess.run([*command, str(broken)], capture_output=True).returncode == 1

    cluster = yaml.safe_load(CLUSTER.read_text())["services"]
    base = compose()["services"]
    services = {  # what compose makes of the two files (environments merged too)
        name: {
            **base.get(name, {}),
            **cluster.get(name, {}),
            "environment": {
                **base.get(name, {}).get("environment", {}),
                **cluster.get(name, {}).get("environment", {}),
            },
        }
        for name in {*base, *cluster}
    }
    known = product_variables()
    for name in our_services():  # each taskcore service gets the cluster's settings
        env = cluster[name]["environment"]
        assert set(env) <= known, name
        assert env["TASKCORE_QUEUE_TYPE"] == "quorum", name
        urls = re.sub(r"\$\{[^}]*\}", "secret", env["TASKCORE_BROKER_URL"])  # interpolated
        nodes = {urlsplit(url).hostname for url in broker_urls(urls)}
        assert nodes == {"rabbitmq", "rabbitmq-2", "rabbitmq-3"}, name
        redis = sentinel_address(
            Settings(
                redis_url=env["TASKCORE_REDIS_URL"],
                redis_sentinel_master=env["TASKCORE_REDIS_SENTINEL_MASTER"],
            )
        )
        assert {host for host, _ in redis.sentinels} == {"sentinel-1", "sentinel-2", "sentinel-3"}
        assert all(host in services for host, _ in redis.sentinels)
    # Peer discovery names each node by the hostname its service has.
    conf = (ROOT / "deploy" / "rabbitmq" / "cluster.conf").read_text()
    listed = set(re.findall(r"nodes\.\d+ = rabbit@(\S+)", conf))
    assert listed == {services[n]["hostname"] for n in nodes} == nodes
    for node in nodes:  # one cookie for all, and only the image's own variables
        assert "RABBITMQ_ERLANG_COOKIE" in services[node]["environment"]
        assert set(services[node]["environment"]) <= IMAGE_VARIABLES["rabbitmq"] | {
            "RABBITMQ_ERLANG_COOKIE"
        }
    # The sentinels watch the master the settings name, on the redis service.
    script = (ROOT / "deploy" / "redis" / "sentinel.sh").read_text()
    assert f"sentinel monitor {redis.master} redis 6379 2" in script
    assert cluster["redis-replica"]["command"][:4] == [
        "redis-server",
        "--replicaof",
        "redis",
        "6379",
    ]


def test_compose_has_the_whole_stack() -> None:
    spec = compose()
    services = spec["services"]
    ours = our_services()
    workers = [n for n, s in ours.items() if argv_of(s["command"])[:2] == ["taskcore", "worker"]]
    beats = [n for n, s in ours.items() if argv_of(s["command"])[:2] == ["taskcore", "beat"]]
    assert {"rabbitmq", "postgres", "redis", "migrate", "web", "recorder"} <= set(services)
    assert {"prometheus", "grafana"} <= set(services)
    assert len(workers) >= 2 and len(beats) == 2
    queue_groups = [set(option(argv_of(ours[w]["command"]), "-Q").split(",")) for w in workers]
    assert all(not (a & b) for i, a in enumerate(queue_groups) for b in queue_groups[i + 1 :])
    for name in [*workers, *beats, "recorder"]:
        assert option(argv_of(ours[name]["command"]), "--metrics-port"), name
    assert {option(argv_of(ours[b]["command"]), "--name") for b in beats} == {"beat-1", "beat-2"}
    assert argv_of(ours["web"]["command"])[0] == "gunicorn"
    assert "--appendonly" in services["redis"]["command"]
    assert (
        services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1]
        == "yes"
    )
    plugins = next(v for v in services["rabbitmq"]["volumes"] if "enabled_plugins" in v)
    text = (ROOT / plugins.split(":")[0]).read_text()
    assert "rabbitmq_management" in text and "rabbitmq_prometheus" in text
    assert services["rabbitmq"]["image"].endswith("-management")


def test_compose_runs_the_migrations_once_before_the_rest() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert argv_of(migrate["command"]) == ["flask", "--app", "webapp", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in set(our_services()) - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), name
        for target, condition in depends.items() if isinstance(depends, dict) else []:
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}"


def test_compose_requires_the_secrets() -> None:
    raw = COMPOSE.read_text()
    for variable in ("WEBAPP_SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"):
        assert re.search(rf"\$\{{{variable}:\?", raw), variable
    for name in ("web", "migrate"):
        value = compose()["services"][name]["environment"]["WEBAPP_SECRET_KEY"]
        assert value.startswith("${WEBAPP_SECRET_KEY:?"), name


def test_compose_health_checks() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if service.get("restart") != "no":
            assert "healthcheck" in service, name
    web = services["web"]["healthcheck"]["test"]
    assert any("/readyz" in part for part in web)
    for name, service in our_services().items():
        if name not in {"web", "migrate"}:
            (command,) = healthcheck_commands(service)
            assert command[:2] == ["taskcore", "health"], name


def test_compose_stop_grace_periods_outlast_the_graceful_shutdowns() -> None:
    checked = 0
    for name, service in our_services().items():
        argv = argv_of(service["command"])
        if argv[:2] == ["taskcore", "worker"]:
            grace = float(option(argv, "--grace-period", worker_grace_default()))
        elif argv[0] == "gunicorn":
            grace = float(option(argv, "--graceful-timeout", 30))
        else:
            continue
        assert seconds(service["stop_grace_period"]) > grace, name
        checked += 1
    assert checked >= 3


def test_compose_volumes_and_mounts_exist() -> None:
    spec = compose()
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in spec["volumes"], f"{name}: {source}"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["services"]["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus"] == "./deploy/prometheus"
    assert (
        "--config.file=/etc/prometheus/prometheus.yml" in spec["services"]["prometheus"]["command"]
    )
    mounts = {v.split(":")[1]: v.split(":")[0] for v in spec["services"]["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    web = spec["services"]["web"]
    multiproc = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(t.split(":")[0] == multiproc for t in web["tmpfs"])  # empty at every start


def test_prometheus_scrapes_what_compose_serves() -> None:
    """deploy/prometheus/prometheus.yml's targets are compose services on the ports they serve."""
    services = our_services()
    served = {}
    for name, service in services.items():
        argv = argv_of(service["command"])
        port = option(argv, "--metrics-port")
        if argv[0] == "gunicorn":
            port = option(argv, "--bind").rsplit(":", 1)[1]
        if port:
            served[name] = int(port)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [
        t
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for t in static["targets"]
    ]
    ours = [t for t in targets if t.split(":")[0] in compose()["services"]]
    assert ours
    for target in ours:
        host, port = target.rsplit(":", 1)
        assert served.get(host) == int(port), target
    assert set(served) <= {t.rsplit(":", 1)[0] for t in ours}  # nothing left unscraped


# -- deploy/Dockerfile -----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined as docker does."""
    lines: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_is_slim_and_does_not_run_as_root() -> None:
    instructions = dockerfile_instructions()
    assert re.fullmatch(r"python:3\.1[1-9]-slim", instructions[0][1])
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] == str(IMAGE_UID)
    for _, spec, _ in k8s_containers():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    exposed = {int(p) for kind, args in instructions if kind == "EXPOSE" for p in args.split()}
    assert {8000, 9100, 9101, 9102} <= exposed


def test_the_image_installs_dependencies_in_a_layer_before_the_code(tmp_path: Path) -> None:
    instructions = dockerfile_instructions()
    copies = [(i, args.split()) for i, (kind, args) in enumerate(instructions) if kind == "COPY"]
    first_copy, sources = copies[0]
    assert sources[:-1] == ["setup.cfg"]  # nothing that changes with the code
    install = next(
        i
        for i, (kind, args) in enumerate(instructions)
        if kind == "RUN" and "pip install -r" in args
    )
    code = min(i for i, args in copies if any(s in {"taskcore", "webapp", "workers"} for s in args))
    assert first_copy < install < code
    assert any(
        kind == "RUN" and re.search(r"pip install --no-deps /tmp/src\b", args)
        for kind, args in instructions[code:]
    )
    # The dependency layer's requirements are exactly the package's install_requires.
    run = instructions[install][1]
    python_code = shlex.split(run.split("python -c", 1)[1])[0]
    setup_cfg = tmp_path / "setup.cfg"
    setup_cfg.write_text((ROOT / "setup.cfg").read_text())
    printed = subprocess.run(
        [sys.executable, "-c", python_code.replace("/tmp/deps/setup.cfg", str(setup_cfg))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    from importlib.metadata import requires

    assert printed == [r for r in requires("taskcore") or [] if "extra ==" not in r]
    assert {"gunicorn", "alembic"} <= {re.split(r"[<>=]", r)[0] for r in printed}


def test_the_build_context_keeps_what_the_image_copies() -> None:
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    kept = {line[1:].removesuffix("/**") for line in ignore if line.startswith("!")}
    for kind, args in dockerfile_instructions():
        if kind == "COPY":
            for source in args.split()[:-1]:
                assert source in kept, source


# -- deploy/k8s ------------------------------------------------------------------------------


def test_manifests_follow_the_kubernetes_schemas() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    count = 0
    for _, document in k8s_documents():
        for version in (OLDEST_KUBERNETES, latest_version()):
            kubernetes_validate.validate(document, version, strict=True)
        count += 1
    assert count >= 12
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spce": {}}
    with pytest.raises(kubernetes_validate.ValidationError):  # strict: unknown fields fail
        kubernetes_validate.validate(bad, OLDEST_KUBERNETES, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}
    assert kustomization["images"][0]["name"] == OUR_IMAGE
    namespaces = [d for _, d in k8s_documents() if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [kustomization["namespace"]]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_documents() if d["kind"] == "Deployment"}


def main_argv(document: dict[str, Any]) -> list[str]:
    (container,) = pod_spec(document)["containers"]  # type: ignore[index]
    return [*container.get("command", []), *container.get("args", [])]


def test_manifests_run_the_same_services_as_compose() -> None:
    found = deployments()
    workers = [d for d in found.values() if main_argv(d)[:2] == ["taskcore", "worker"]]
    groups = sorted(option(main_argv(d), "-Q") for d in workers)
    compose_groups = sorted(
        option(argv_of(s["command"]), "-Q")
        for s in our_services().values()
        if argv_of(s["command"])[:2] == ["taskcore", "worker"]
    )
    assert groups == compose_groups  # one Deployment per queue group
    (beat,) = [d for d in found.values() if main_argv(d)[:2] == ["taskcore", "beat"]]
    assert beat["spec"]["replicas"] == 2
    (recorder,) = [d for d in found.values() if main_argv(d)[:2] == ["taskcore", "recorder"]]
    (web,) = [d for d in found.values() if main_argv(d)[0] == "gunicorn"]
    for document in [*workers, beat, recorder]:
        assert option(main_argv(document), "--metrics-port")
    (job,) = [d for _, d in k8s_documents() if d["kind"] == "Job"]
    assert main_argv(job) == ["flask", "--app", "webapp", "db", "upgrade"]
    (wait,) = pod_spec(web)["initContainers"]  # type: ignore[index]
    assert wait["command"] == ["flask", "--app", "webapp", "db", "current", "--check"]
    (service,) = [d for _, d in k8s_documents() if d["kind"] == "Service"]
    assert (
        service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in pod_spec(web)["containers"][0]["ports"]}  # type: ignore[index]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_manifests_probe_every_long_running_container() -> None:
    for name, document in deployments().items():
        (container,) = pod_spec(document)["containers"]  # type: ignore[index]
        assert "readinessProbe" in container and "livenessProbe" in container, name
        ports = {p["name"] for p in container.get("ports", [])}
        ports |= {p["containerPort"] for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if "httpGet" in container[probe]:
                assert container[probe]["httpGet"]["port"] in ports, name
    (web,) = [c for _, _, c in k8s_containers() if c.get("command", [""])[0] == "gunicorn"]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_termination_grace_periods_outlast_the_graceful_shutdowns() -> None:
    for name, document in deployments().items():
        spec = pod_spec(document)
        (container,) = spec["containers"]  # type: ignore[index]
        argv = main_argv(document)
        if argv[:2] == ["taskcore", "worker"]:
            grace = float(option(argv, "--grace-period", worker_grace_default()))
        elif argv[0] == "gunicorn":
            grace = float(option(argv, "--graceful-timeout", 30))
        else:
            continue
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        total = grace + pre_stop.get("seconds", 0)
        assert spec["terminationGracePeriodSeconds"] > total, name  # type: ignore[index]


# -- migrations ------------------------------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on this test's own (empty) PostgreSQL schema."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


HISTORY_TABLES = {"task_runs", "task_events", "task_workflows"}
#: The console's tables, as revision 0001 made them (and create_all before migrations).
CONSOLE_TABLES = {"users", "api_tokens", "audit_log"}
#: Every model's table: the console's and the workloads'.
WEB_TABLES = set(models_metadata().tables)
VERSION_TABLES = {"taskcore_alembic_version", "webapp_alembic_version"}


def migrate(engine: sa.Engine) -> None:
    """What `flask --app webapp db upgrade` does."""
    create_schema(engine)
    WEBAPP.upgrade(engine)


def test_models_and_migrations_agree(engine: sa.Engine) -> None:
    migrate(engine)
    assert tables(engine) == HISTORY_TABLES | WEB_TABLES | VERSION_TABLES
    assert HISTORY.differences(engine) == []
    assert WEBAPP.differences(engine) == []
    # Kept out of the comparison (made with SQL the models cannot state): there all the same.
    assert TRIGRAM_INDEX in {i["name"] for i in sa.inspect(engine).get_indexes("task_runs")}
    assert HISTORY.current(engine) == HISTORY.heads()
    assert WEBAPP.current(engine) == WEBAPP.heads()


def test_the_comparison_sees_a_difference(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_task_runs_queue_updated"))
        connection.execute(sa.text("ALTER TABLE users ADD COLUMN nickname TEXT"))
    assert [d[0] for d in HISTORY.differences(engine)] == ["add_index"]
    assert [d[0] for d in WEBAPP.differences(engine)] == ["remove_column"]


def check_up_down_up(engine: sa.Engine) -> None:
    migrate(engine)
    assert tables(engine) >= HISTORY_TABLES | WEB_TABLES
    WEBAPP.downgrade(engine, "base")
    assert tables(engine) == HISTORY_TABLES | VERSION_TABLES
    HISTORY.downgrade(engine, "0001_task_history")  # the tables as first shipped
    assert "task_workflows" not in tables(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("task_runs")}
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("task_runs")}
    assert "queue_wait" not in columns and "workflow_id" not in columns
    assert "ix_task_runs_state" in indexes
    HISTORY.downgrade(engine, "base")
    assert tables(engine) == VERSION_TABLES
    assert HISTORY.current(engine) == () and WEBAPP.current(engine) == ()
    migrate(engine)
    assert tables(engine) == HISTORY_TABLES | WEB_TABLES | VERSION_TABLES
    assert HISTORY.current(engine) == HISTORY.heads()
    assert WEBAPP.current(engine) == WEBAPP.heads()


def test_migrations_go_up_down_to_base_and_up_again(engine: sa.Engine) -> None:
    check_up_down_up(engine)
    assert HISTORY.differences(engine) == [] and WEBAPP.differences(engine) == []


def test_migrations_go_up_down_and_up_on_sqlite(tmp_path: Path) -> None:
    """`make run`'s database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'webapp.sqlite3'}")
    try:
        check_up_down_up(engine)
        assert WEBAPP.differences(engine) == []
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_adopted(engine: sa.Engine) -> None:
    # The history tables as first shipped and the console's as create_all made them, with
    # rows in them, and no version tables.
    HISTORY.upgrade(engine, "0001_task_history")
    metadata = models_metadata()
    metadata.create_all(engine, tables=[metadata.tables[name] for name in CONSOLE_TABLES])
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE taskcore_alembic_version"))
        connection.execute(
            sa.text(
                "INSERT INTO task_runs (task_id, state, attempts, updated_at)"
                " VALUES ('old-run', 'SUCCESS', 1, now())"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO users (name, password_hash, role, created_at)"
                " VALUES ('ada', 'x', 'operator', now())"
            )
        )
    assert tables(engine) == {"task_runs", "task_events"} | CONSOLE_TABLES
    migrate(engine)
    assert HISTORY.current(engine) == HISTORY.heads()
    assert WEBAPP.current(engine) == WEBAPP.heads()
    assert HISTORY.differences(engine) == [] and WEBAPP.differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT task_id FROM task_runs")).scalar() == "old-run"
        assert connection.execute(sa.text("SELECT name FROM users")).scalar() == "ada"


def test_concurrent_upgrades_wait_for_each_other(engine: sa.Engine) -> None:
    failures: list[BaseException] = []

    def upgrade() -> None:
        try:
            create_schema(engine)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert HISTORY.current(engine) == HISTORY.heads()


def test_a_database_migrated_by_a_newer_version_is_left_alone(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    create_schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE taskcore_alembic_version SET version_num = '9999_x'"))
    with caplog.at_level(logging.WARNING, logger="taskcore.history"):
        create_schema(engine)  # e.g. an older recorder starting during a rolling upgrade
    assert "9999_x" in caplog.text
    with pytest.raises(SchemaAheadError, match="a newer version migrated it"):
        HISTORY.upgrade(engine)


def test_the_factory_makes_no_tables_and_flask_db_migrates(database_url: str) -> None:
    from webapp import create_app

    from .webapp_helpers import close_web_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    runner = app.test_cli_runner()
    engine = make_engine(database_url)
    try:
        assert tables(engine) == set()
        assert runner.invoke(args=["db", "current", "--check"]).exit_code == 1
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
        assert tables(engine) == HISTORY_TABLES | WEB_TABLES | VERSION_TABLES
        assert runner.invoke(args=["db", "current", "--check"]).exit_code == 0
        assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
        assert tables(engine) == HISTORY_TABLES | VERSION_TABLES  # the history stays
    finally:
        engine.dispose()
        close_web_app(app)
