"""One Options object from flags, env, profiles and the local cluster, in that order."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.config import (
    GlobalFlags,
    Profile,
    ProfileStore,
    config_path,
    mask_properties,
    resolve,
    toml_dumps,
)
from kcli.errors import BadInput, NotFound, Unreachable


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "KCLI_STATE_DIR": str(tmp_path / "st"),
            "HOME": str(tmp_path)}


def save_profiles(env: dict[str, str], *profiles: Profile, current: str | None = None) -> None:
    store = ProfileStore.load(config_path(env))
    for profile in profiles:
        store = store.with_profile(profile)
    store.using(current).save()


def local_cluster(env: dict[str, str], bootstrap: str, pid: int) -> None:
    """Register a local cluster as `kcli cluster start` does."""
    state = Path(env["KCLI_STATE_DIR"])
    data_dir = state.parent / "cluster-data"
    doc = (f'{{"name": "c", "bootstrap": "{bootstrap}", "data_dir": "{data_dir}", '
           f'"brokers": [{{"node_id": 1, "port": 1, "pid": {pid}}}]}}')
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "cluster.json").write_text(doc)
    (state / "clusters").mkdir(parents=True, exist_ok=True)
    (state / "clusters" / "c.json").write_text(doc)


def test_default_is_localhost(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    opts = resolve(GlobalFlags(), environ=env, stdout_isatty=False)
    assert (opts.bootstrap, opts.bootstrap_source) == ("localhost:9092", "default")
    assert opts.output == "json"
    assert not opts.output_explicit
    assert resolve(GlobalFlags(), environ=env, stdout_isatty=True).output == "table"


def test_precedence(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    local_cluster(env, "127.0.0.1:1111", os.getpid())
    opts = resolve(GlobalFlags(), environ=env)
    assert (opts.bootstrap, opts.bootstrap_source) == ("127.0.0.1:1111", "local cluster")

    save_profiles(env, Profile("p", "profile:9092", {"client.id": "from-profile"}), current="p")
    opts = resolve(GlobalFlags(), environ=env)
    assert (opts.bootstrap, opts.profile) == ("profile:9092", "p")
    assert opts.properties["client.id"] == "from-profile"

    opts = resolve(GlobalFlags(), environ={**env, "KCLI_BOOTSTRAP": "env:9092"})
    assert (opts.bootstrap, opts.bootstrap_source) == ("env:9092", "env")

    opts = resolve(GlobalFlags(bootstrap="flag:9092", overrides=("client.id=x",)),
                   environ={**env, "KCLI_BOOTSTRAP": "env:9092"})
    assert (opts.bootstrap, opts.bootstrap_source) == ("flag:9092", "flag")
    assert opts.properties["client.id"] == "x"  # -X wins over the profile
    assert opts.client_config()["client.id"] == "x"


def test_a_stopped_local_cluster_is_an_error_when_used(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a silent fall-back to localhost:9092, where another broker could listen; and
    raised only when the command connects, so commands that never do still run."""
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    local_cluster(env, "127.0.0.1:1111", 2**22 + 12345)  # beyond pid_max: never alive
    opts = resolve(GlobalFlags(), environ=env)
    with pytest.raises(Unreachable, match="is stopped; start it with"):
        opts.client_config()
    flagged = resolve(GlobalFlags(bootstrap="elsewhere:9092"), environ=env)
    assert flagged.client_config()["bootstrap.servers"] == "elsewhere:9092"


def test_the_cluster_flag_selects_a_local_cluster(env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    local_cluster(env, "127.0.0.1:1111", os.getpid())
    opts = resolve(GlobalFlags(cluster="c"), environ={**env, "KCLI_BOOTSTRAP": "env:1"})
    assert (opts.bootstrap, opts.bootstrap_source) == ("127.0.0.1:1111", "local cluster")
    opts = resolve(GlobalFlags(), environ={**env, "KCLI_CLUSTER": "nope"})
    with pytest.raises(NotFound, match="no local cluster named 'nope'"):
        opts.client_config()


def test_profile_selection_by_flag_and_env(env: dict[str, str]) -> None:
    save_profiles(env, Profile("a", "a:1", {}), Profile("b", "b:1", {}), current="a")
    assert resolve(GlobalFlags(), environ=env).bootstrap == "a:1"
    assert resolve(GlobalFlags(), environ={**env, "KCLI_PROFILE": "b"}).bootstrap == "b:1"
    assert resolve(GlobalFlags(profile="a"), environ={**env, "KCLI_PROFILE": "b"}).profile == "a"
    with pytest.raises(NotFound, match=r"no profile named 'zz' \(profiles: a, b\)"):
        resolve(GlobalFlags(profile="zz"), environ=env)


def test_flags_after_the_subcommand_win() -> None:
    before = GlobalFlags(bootstrap="a:1", overrides=("x=1",), output="json", quiet=True)
    after = GlobalFlags(bootstrap="b:1", overrides=("x=2",))
    merged = before.then(after)
    assert merged.bootstrap == "b:1"
    assert merged.overrides == ("x=1", "x=2")
    assert merged.output == "json"
    assert merged.quiet


@pytest.mark.parametrize("flags", [GlobalFlags(overrides=("novalue",)),
                                   GlobalFlags(output="yaml"), GlobalFlags(timeout=0)])
def test_bad_flags(flags: GlobalFlags, env: dict[str, str]) -> None:
    with pytest.raises(BadInput):
        resolve(flags, environ=env)


def test_profiles_file_is_private_and_readable_by_tomllib(env: dict[str, str]) -> None:
    save_profiles(env, Profile("prod", "k:9093", {"sasl.password": 'p"w\\\n', "a.b": "1"}),
                  current="prod")
    path = config_path(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["current"] == "prod"
    assert data["profiles"]["prod"]["properties"]["sasl.password"] == 'p"w\\\n'
    store = ProfileStore.load(path).without("prod")
    assert store.current is None
    assert not store.profiles


def test_masking() -> None:
    masked = mask_properties({"sasl.password": "s", "ssl.key.password": "s",
                              "sasl.jaas.config": "s", "sasl.oauthbearer.client.secret": "s",
                              "sasl.username": "me"})
    assert masked == {"sasl.password": "****", "ssl.key.password": "****",
                      "sasl.jaas.config": "****", "sasl.oauthbearer.client.secret": "****",
                      "sasl.username": "me"}


scalars = st.text(max_size=20) | st.integers(-(2**63), 2**63 - 1) | st.booleans()
tables = st.recursive(
    st.dictionaries(st.text(min_size=1, max_size=10), scalars, max_size=4),
    lambda children: st.dictionaries(st.text(min_size=1, max_size=10), children, max_size=3),
    max_leaves=10,
)


@given(tables)
def test_toml_writer_round_trips(data: dict[str, object]) -> None:
    assert tomllib.loads(toml_dumps(data)) == data


@pytest.mark.parametrize("name", ["prod\n", "", "a b", "ü"])
def test_profile_names_are_checked_whole(env: dict[str, str], name: str) -> None:
    with pytest.raises(BadInput, match="profile names use"):
        save_profiles(env, Profile(name, "k:9092", {}))


def test_schema_registry_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """schema.registry.* properties configure the registry client, never librdkafka;
    --registry, then $KCLI_REGISTRY, then the profile, then the local cluster's."""
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    save_profiles(env, Profile("p", "profile:9092", {
        "schema.registry.url": "https://sr.example.com",
        "schema.registry.basic.auth.user.info": "alice:secret",
        "client.id": "me"}), current="p")
    opts = resolve(GlobalFlags(overrides=("schema.registry.ssl.ca.location=/ca.pem",)),
                   environ=env)
    assert not any(k.startswith("schema.registry.") for k in opts.client_config())
    assert opts.registry_config() == {"url": "https://sr.example.com",
                                      "basic.auth.user.info": "alice:secret",
                                      "ssl.ca.location": "/ca.pem"}
    assert opts.registry_config("http://flag:8081")["url"] == "http://flag:8081"
    assert opts.registry_config("none") is None
    from_env = resolve(GlobalFlags(), environ={**env, "KCLI_REGISTRY": "http://env:8081"})
    assert from_env.registry_config()["url"] == "http://env:8081"  # type: ignore[index]
    assert mask_properties({"schema.registry.basic.auth.user.info": "alice:secret"}) == {
        "schema.registry.basic.auth.user.info": "****"}


def test_the_local_clusters_registry(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    monkeypatch.setenv("KCLI_STATE_DIR", env["KCLI_STATE_DIR"])
    local_cluster(env, "127.0.0.1:1111", os.getpid())
    entry = Path(env["KCLI_STATE_DIR"]) / "clusters" / "c.json"
    entry.write_text(entry.read_text()[:-1] + ', "schema_registry": {"url": '
                     '"http://127.0.0.1:8081", "port": 8081, "pid": 1}}')
    assert resolve(GlobalFlags(), environ=env).registry_config() == {
        "url": "http://127.0.0.1:8081"}
    # another cluster named with -b: the local registry is not its registry
    assert resolve(GlobalFlags(bootstrap="elsewhere:9092"), environ=env).registry_config() \
        is None
