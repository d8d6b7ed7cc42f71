"""`kcli cluster`: local clusters of embedded brokers for development and failure drills."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kcli.cli.common import emit, plural, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput, KcliError

if TYPE_CHECKING:
    from kcli.local.registry import KnownCluster
    from kcli.local.supervisor import LocalCluster
    from kcli.output import Table

app = typer.Typer(help="Start, stop and inspect a local cluster of embedded brokers.",
                  no_args_is_help=True, **help_settings())

DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", metavar="DIR",
    help="The cluster's directory [default: the running cluster's (see --cluster), else "
         "the user data dir].")]
BrokerArg = Annotated[int, typer.Argument(metavar="BROKER", help="Broker id.",
                                          show_default=False)]


def _cluster_opts(opts: Options, bootstrap: str) -> Options:
    """Options pointing at a local cluster, unless -b/env/profile chose another."""
    if opts.bootstrap_source in ("flag", "env", "profile"):
        return opts
    from dataclasses import replace

    return replace(opts, bootstrap=bootstrap, bootstrap_source="local cluster",
                   bootstrap_problem=None)


def _secured(opts: Options, cluster: LocalCluster, name: str) -> dict[str, object]:
    """Write (or refresh) the profile of a secured cluster: the admin login, in the
    0600 config file; it becomes the default when there is none. The facts to print
    (never the password)."""
    from kcli.config import Profile, ProfileStore, config_path
    from kcli.local import security

    files = security.files_for(cluster.data_dir)
    profile = "local" if name == "default" else f"local-{name}"
    store = ProfileStore.load(config_path())
    properties = files.client_properties()
    if cluster.schema_registry is not None:  # a profile's commands find it only here
        properties["schema.registry.url"] = cluster.schema_registry.url
    store = store.with_profile(Profile(profile, cluster.bootstrap, properties))
    if store.current is None:
        store = store.using(profile)
    store.save()
    return {"protocol": "SASL_SSL", "mechanism": security.MECHANISM, "user": security.ADMIN,
            "ca": str(files.ca), "profile": profile, "default": store.current == profile}


@command(app, "start")
def start(
    opts: Options,
    brokers: Annotated[int | None, typer.Option(
        "--brokers", "-n", min=1, max=9, help="Number of brokers [default: 1, or as before].")
    ] = None,
    data_dir: DataDirOpt = None,
    port: Annotated[int | None, typer.Option(
        "--port", min=1, max=65535,
        help="Port of broker 1; the others take the next ones [default: 9092].")] = None,
    foreground: Annotated[bool, typer.Option(
        "--foreground", help="Stay attached; Ctrl-C stops the cluster.")] = False,
    no_registry: Annotated[bool, typer.Option(
        "--no-registry", help="Do not run a Schema Registry with the cluster.")] = False,
    secure: Annotated[bool, typer.Option(
        "--secure", help="SASL_SSL with SCRAM-SHA-512 and ACLs: a local CA, an admin "
                         "super user and a profile that logs in as it (set when the "
                         "cluster is created).")] = False,
) -> None:
    """Start a local cluster and print its bootstrap address.

    A Schema Registry (Confluent's REST API) starts with it; its URL is printed on
    stderr and found by produce, consume and `kcli schema` by themselves."""
    from kcli.local import registry, supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    cluster, already = supervisor.start(directory, brokers, port, not no_registry, secure)
    message = (f"the cluster in {directory} is already running" if already else
               f"started {plural(len(cluster.brokers), 'broker')} in {directory}")
    registry_url = cluster.schema_registry.url if cluster.schema_registry else None
    if registry_url:
        message += f"; schema registry at {registry_url}"
    secured = _secured(opts, cluster, registry.name_for(directory)) if cluster.secure else None
    if secured is not None:
        message += (f"\nSASL_SSL, SCRAM-SHA-512, user {secured['user']} (a super user); "
                    f"CA certificate {secured['ca']}\nprofile {secured['profile']} logs in "
                    f"as {secured['user']}" + ("" if secured["default"] else
                                                f" (use -p {secured['profile']})"))
    if opts.output_explicit and opts.output in ("json", "jsonl"):
        report(opts, message, {
            "bootstrap": cluster.bootstrap, "data_dir": str(directory),
            "name": registry.name_for(directory), "brokers": len(cluster.brokers),
            "schema_registry": registry_url, "already_running": already,
            "security": secured})
    else:  # the bare address, for BOOTSTRAP=$(kcli cluster start)
        say(opts, message)
        print(cluster.bootstrap)
        sys.stdout.flush()
    if foreground:
        _stay_attached(opts, directory)


def _stay_attached(opts: Options, directory: Path) -> None:
    from kcli.local import supervisor

    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    say(opts, "running in the foreground; Ctrl-C stops the cluster")
    while not stopping:
        time.sleep(0.2)
    supervisor.stop(directory)
    say(opts, "cluster stopped")


@command(app, "stop")
def stop(opts: Options, data_dir: DataDirOpt = None) -> None:
    """Stop every broker cleanly (data is kept until `purge`)."""
    from kcli.local import supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    cluster, killed = supervisor.stop(directory)
    if killed:
        say(opts, f"broker(s) {', '.join(map(str, killed))} did not stop in time and were killed")
    report(opts, f"stopped the cluster in {cluster.data_dir}",
           {"data_dir": str(cluster.data_dir), "killed": killed})


@command(app, "status")
def status(opts: Options, data_dir: DataDirOpt = None) -> None:
    """Local clusters, brokers, controller and topics.

    Exits 0 when every broker is up, 1 when the cluster is degraded, 3 when it is
    stopped."""
    from kcli.local import registry, supervisor
    from kcli.output import Result

    known = registry.known_clusters()
    listed = _clusters_table(known) if data_dir is None and len(known) > 1 else None
    try:
        directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    except BadInput:
        if listed is None:
            raise
        # several clusters and none chosen: the list is the answer
        rows = listed.rows
        emit(opts, Result({"clusters": rows}, (listed,)))
        raise typer.Exit(0 if any(r["state"] == "running" for r in rows) else 3) from None
    cluster = supervisor.require(directory)
    data, tables, code = _cluster_status(opts, cluster)
    if listed is not None:
        data["clusters"] = listed.rows
        tables = (listed, *tables)
    emit(opts, Result(data, tables))
    if code:
        raise typer.Exit(code)


def _clusters_table(known: list[KnownCluster]) -> Table:
    from kcli.output import Column, Table

    rows = [{"name": c.name, "state": "running" if c.running else "stopped",
             "bootstrap": c.bootstrap, "data_dir": str(c.data_dir)} for c in known]
    return Table((Column("name", "NAME"), Column("state", "STATE"),
                  Column("bootstrap", "BOOTSTRAP"), Column("data_dir", "DATA DIR")),
                 rows, title="Local clusters")


def _cluster_status(opts: Options, cluster: LocalCluster,
                    ) -> tuple[dict[str, Any], tuple[Table, ...], int]:
    """One cluster's status document, its tables, and the exit code: 0 when every
    broker runs and serves, 3 when none runs, 1 for anything in between."""
    from kcli.output import Column, Table
    from kcli.output.model import fields_table

    health = _cluster_health(_cluster_opts(opts, cluster.bootstrap)) if cluster.running() else {}
    live_ids = set(health.get("live_brokers", []))
    controller = health.get("controller")
    rows = [
        {"broker": b.node_id, "port": b.port, "pid": b.pid if b.alive else None,
         "process": "running" if b.alive else "stopped",
         "serving": b.node_id in live_ids, "controller": b.node_id == controller}
        for b in cluster.brokers
    ]
    running = bool(cluster.running())
    degraded = running and (
        bool(health.get("error")) or bool(health.get("offline"))
        or not all(r["process"] == "running" and r["serving"] for r in rows))
    state = "degraded" if degraded else "running" if running else "stopped"
    data: dict[str, Any] = {
        "data_dir": str(cluster.data_dir), "bootstrap": cluster.bootstrap,
        "running": running, "state": state, "brokers": rows,
        "controller": controller, "topics": health.get("topics"),
        "internal_topics": health.get("internal_topics"),
        "partitions": health.get("partitions"),
        "internal_partitions": health.get("internal_partitions"),
        "under_replicated_partitions": health.get("under_replicated"),
        "offline_partitions": health.get("offline"), "error": health.get("error"),
        "schema_registry": ({"url": cluster.schema_registry.url,
                             "process": "running" if cluster.schema_registry.alive
                             else "stopped"} if cluster.schema_registry else None),
    }

    def with_internal(count: Any, internal: Any) -> Any:
        return f"{count} (+{internal} internal)" if internal else count

    summary = fields_table([
        ("data dir", data["data_dir"]), ("bootstrap", data["bootstrap"]),
        ("state", state), ("controller", controller),
        ("topics", with_internal(data["topics"], data["internal_topics"])),
        ("partitions", with_internal(data["partitions"], data["internal_partitions"])),
        ("under-replicated", data["under_replicated_partitions"]),
        ("offline", data["offline_partitions"]),
        ("schema registry", f"{data['schema_registry']['url']} "
                            f"({data['schema_registry']['process']})"
         if data["schema_registry"] else "(none)"),
        *((("error", data["error"]),) if data["error"] else ()),
    ])
    brokers = Table((Column("broker", "BROKER", "int"), Column("port", "PORT", "int"),
                     Column("pid", "PID", "int"), Column("process", "PROCESS"),
                     Column("controller", "CONTROLLER", "bool")), rows, title="Brokers")
    code = {"running": 0, "degraded": 1, "stopped": 3}[state]
    return data, (summary, brokers), code


def _cluster_health(opts: Options) -> dict[str, Any]:
    """What the cluster itself reports, through the standard client. Topics and
    partitions are counted the same way: user topics, and internal ones apart."""
    from kcli.cli.common import connect

    try:
        metadata = connect(opts).metadata()
    except KcliError as error:  # shown in the status rather than failing it
        return {"error": error.message}
    from kcli.client.topics import is_internal

    user = [t for name, t in metadata.topics.items() if not is_internal(name)]
    internal = [t for name, t in metadata.topics.items() if is_internal(name)]
    partitions = [p for t in metadata.topics.values() for p in t.partitions.values()]
    return {
        "live_brokers": sorted(metadata.brokers),
        "controller": getattr(metadata, "controller_id", None),
        "topics": len(user),
        "internal_topics": len(internal),
        "partitions": sum(len(t.partitions) for t in user),
        "internal_partitions": sum(len(t.partitions) for t in internal),
        "under_replicated": sum(1 for p in partitions if len(p.isrs) < len(p.replicas)),
        "offline": sum(1 for p in partitions if p.leader < 0),
    }


@command(app, "logs")
def logs(
    opts: Options,
    broker: Annotated[int | None, typer.Argument(
        metavar="[BROKER]", help="Broker id [default: all].", show_default=False)] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
                      ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0,
                                       help="Lines to show from the end of each log.")] = 50,
    data_dir: DataDirOpt = None,
) -> None:
    """Print broker logs.

    Each line is prefixed with its broker when showing several."""
    from kcli.local import supervisor

    cluster = supervisor.require(supervisor.resolve_data_dir(data_dir, opts.flags.cluster))
    files = supervisor.log_files(cluster, broker)
    prefix = len(files) > 1
    positions: dict[int, int] = {}
    out = sys.stdout
    for node_id, path in files:
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            text = b""
        positions[node_id] = len(text)
        tail = text.decode(errors="replace").splitlines()[-lines:] if lines else []
        for line in tail:
            out.write(f"[broker-{node_id}] {line}\n" if prefix else f"{line}\n")
    out.flush()
    while follow:
        time.sleep(0.2)
        for node_id, path in files:
            try:
                with open(path, "rb") as f:
                    f.seek(positions[node_id])
                    chunk = f.read()
            except FileNotFoundError:
                continue
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits
            if not complete:
                continue
            positions[node_id] += complete
            for line in chunk[:complete].decode(errors="replace").splitlines():
                out.write(f"[broker-{node_id}] {line}\n" if prefix else f"{line}\n")
            out.flush()


@command(app, "purge")
def purge(
    opts: Options,
    data_dir: DataDirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop the cluster and delete all of its data (asks first unless --yes)."""
    from kcli.local import supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("refusing to purge without confirmation: stdin is not a terminal "
                           "(pass --yes)")
        if not typer.confirm(f"Stop the cluster and delete everything in {directory}?",
                             default=False, err=True):
            say(opts, "nothing deleted")
            raise typer.Exit(1)
    supervisor.purge(directory)
    dropped = _drop_generated_profile(directory)
    report(opts, f"purged {directory}" + (f"; removed profile {dropped}" if dropped else ""),
           {"purged": str(directory), "removed_profile": dropped})


def _drop_generated_profile(directory: Path) -> str | None:
    """Remove the profile `start --secure` wrote for this cluster (it trusts a CA that
    is gone now); returns its name."""
    from kcli.config import ProfileStore, config_path

    store = ProfileStore.load(config_path())
    ca = str(directory / "security" / "ca.pem")
    for name, profile in store.profiles.items():
        if name.startswith("local") and profile.properties.get("ssl.ca.location") == ca:
            store.without(name).save()
            return name
    return None


@command(app, "add-broker")
def add_broker(
    opts: Options,
    port: Annotated[int | None, typer.Option(
        "--port", min=1, max=65535,
        help="Its port [default: the one after the highest in use].")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add a broker to a running local cluster.

    It joins empty, as a new Kafka broker does; move partitions onto it with
    `kcli partition move`."""
    from kcli.local import supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    added = supervisor.add_broker(directory, port)
    report(opts, f"broker {added.node_id} joined the cluster on port {added.port}",
           {"broker": added.node_id, "port": added.port, "pid": added.pid})


@command(app, "kill")
def kill(opts: Options, broker: BrokerArg, data_dir: DataDirOpt = None) -> None:
    """SIGKILL one broker, as a crash would (for failure drills)."""
    from kcli.local import supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    killed = supervisor.kill(directory, broker)
    report(opts, f"killed broker {killed.node_id} (pid {killed.pid})",
           {"broker": killed.node_id, "pid": killed.pid})


@command(app, "restart")
def restart(opts: Options, broker: BrokerArg, data_dir: DataDirOpt = None) -> None:
    """Restart one broker and wait until it answers.

    A broker that was killed is started."""
    from kcli.local import supervisor

    directory = supervisor.resolve_data_dir(data_dir, opts.flags.cluster)
    started = supervisor.restart(directory, broker)
    report(opts, f"broker {started.node_id} is running (pid {started.pid}, port {started.port})",
           {"broker": started.node_id, "pid": started.pid, "port": started.port})
