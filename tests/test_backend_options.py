"""Every backend-specific option arrives through its backend's declaration (issue 11): the built-in
backends declare theirs (``--prefix``, ``--schema``, ``--gello-prefix``, ``--gello-schema``) exactly
as a backend from another package does, ``ConnectOptions`` keeps only generic fields, a flag several
backends read is declared ``shared`` by each, and a declared option has a type that the CLI converts
to and the config file checks, naming the file, the key and the value."""
from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import fields

import pytest

from backends.declaration import BackendOption
from backends.registry import ConnectOptions, backend_options, declarations, declared_options
from console.cli import _flags, build_parser, main
from console.config import ConfigError, Context, Settings, check_file, load
from console.connections import connect_options
from tests.cli_harness import isolated_env  # noqa: F401 (autouse: no developer config or environment)

#: what ConnectOptions may hold as fields: nothing of any one backend
GENERIC = {"backend", "connect_timeout", "op_timeout", "discovery_budget_s", "store_prefix", "store_schema",
           "client_name", "read_only", "discovery_cache", "write_url", "extra"}


def _settings(*argv: str) -> Settings:
    return load(_flags(build_parser().parse_args(list(argv))))


# ------------------------------------------------------------------ no backend field in ConnectOptions
def test_connect_options_has_only_generic_fields_and_every_declared_option_reads_like_one():
    names = {f.name for f in fields(ConnectOptions)}
    assert names == GENERIC
    dests = set(declared_options())
    assert {"prefixes", "schema", "gello_prefixes", "gello_schema"} <= dests
    assert not names & dests
    # nor in the config model: a declared key lives in backend_options
    keys = {opt.config_key for opt in declared_options().values()}
    for model in (Settings, Context):
        assert not keys & (set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias})
    for dest, opt in declared_options().items():
        assert getattr(ConnectOptions(), dest) == opt.unset
    given = ConnectOptions(prefixes=["p"], schema="s", gello_schema="g", op_timeout=3.0)
    assert (given.prefixes, given.schema, given.gello_schema, given.gello_prefixes) == (["p"], "s", "g", [])
    assert given.extra == {"prefixes": ["p"], "schema": "s", "gello_schema": "g"} and given.op_timeout == 3.0
    with pytest.raises(TypeError, match="nobody_declares_this"):
        ConnectOptions(nobody_declares_this=1)


def test_shared_flags_are_declared_by_each_backend_that_reads_them():
    owners = {flag: sorted(d.name for d in declarations() for o in d.options if o.flag == flag)
              for flag in backend_options()}
    assert owners["--prefix"] == ["bullmq", "gello"]
    assert owners["--schema"] == ["bullmq-postgres", "gello", "pgboss"]
    assert owners["--gello-prefix"] == ["gello"] and owners["--gello-schema"] == ["gello"]
    for flag in ("--prefix", "--schema"):
        assert all(o.shared for o in backend_options()[flag])
    assert declared_options()["prefixes"].repeatable and declared_options()["gello_prefixes"].repeatable


def test_builtin_options_keep_their_flags_keys_and_precedence(isolated_env):
    isolated_env.write_text('prefixes = ["file"]\nschema = "file_s"\ngello_prefixes = "gfile"\n'
                               '[contexts.c]\nprefixes = ["ctx"]\ngello_schema = "gctx"\n'
                               '[contexts.empty]\nprefixes = []\n')
    s = _settings()
    assert (s.prefixes, s.option("schema"), s.gello_prefixes, s.gello_schema) == (["file"], "file_s", ["gfile"], None)
    s = _settings("--context", "c")
    assert (s.prefixes, s.option("schema"), s.gello_schema) == (["ctx"], "file_s", "gctx")
    assert _settings("--context", "empty").prefixes == ["file"]  # an empty list in a context is no value
    s = _settings("--context", "c", "--prefix", "a", "--prefix", "b", "--gello-schema", "gflag")
    assert (s.prefixes, s.gello_schema) == (["a", "b"], "gflag")
    options = connect_options(s)
    assert (options.prefixes, options.schema, options.gello_prefixes, options.gello_schema) == \
        (["a", "b"], "file_s", ["gfile"], "gflag")


def test_gello_reads_the_shared_flag_only_when_forced_and_its_own_always():
    from backends.gello_postgres.declaration import gello_schema
    from backends.gello_redis.declaration import gello_prefixes

    assert gello_prefixes(ConnectOptions(prefixes=["b"])) == ["gello"]
    assert gello_prefixes(ConnectOptions(backend="gello", prefixes=["b"])) == ["b"]
    assert gello_prefixes(ConnectOptions(backend="gello", prefixes=["b"], gello_prefixes=["g"])) == ["g"]
    assert gello_schema(ConnectOptions(schema="s")) == "public"
    assert gello_schema(ConnectOptions(backend="gello", schema="s")) == "s"
    assert gello_schema(ConnectOptions(schema="s", gello_schema="g")) == "g"


def test_a_builtin_option_of_the_wrong_type_names_file_key_and_value(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("prefixes = 5\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: key 'prefixes': bad value 5: expected a list of strings"):
        check_file(path)
    path.write_text('[contexts.prod]\nurls = ["redis://h:6379/0"]\nschema = ["a"]\n')
    with pytest.raises(ConfigError, match=r"key 'contexts\.prod\.schema': bad value \['a'\]: expected a string"):
        check_file(path)
    path.write_text('prefixes = ["a", 1]\n')
    with pytest.raises(ConfigError, match=r"key 'prefixes': bad value \['a', 1\]: expected a list of strings"):
        check_file(path)


def test_gello_prefix_flag_and_context_key_find_gello_on_redis(capsys, isolated_env, redis_url, prefix):
    """``--gello-prefix`` (and the context key ``gello_prefixes``) reach Gello's detection and reader
    without ``--backend gello``: a queue made by the reference producer is listed next to BullMQ's."""
    import redis.asyncio as aioredis

    from tests.gello_reference import RedisGello

    async def produce() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await RedisGello(client, f"{prefix}g").enqueue("mail")
        finally:
            await client.aclose()

    asyncio.run(produce())

    def gello_queues(*argv: str) -> list[str]:
        with pytest.raises(SystemExit) as info:
            main(["status", "--url", redis_url, "--prefix", f"{prefix}b", "--json", *argv])
        out, err = capsys.readouterr()
        assert info.value.code in (0, None), err
        return [q["queue"] for q in json.loads(out)["queues"] if q["backend"] == "gello"]

    assert gello_queues() == []  # default Gello prefix "gello": not this test's
    assert gello_queues("--gello-prefix", f"{prefix}g") == ["mail"]
    isolated_env.write_text(f'[contexts.t]\ngello_prefixes = ["{prefix}g"]\n')
    assert gello_queues("--context", "t") == ["mail"]
    assert gello_queues("--context", "t", "--gello-prefix", f"{prefix}other") == []  # the flag wins


# ------------------------------------------------------------------ typed options of any backend
PLUGIN = '''
from backends.declaration import BackendDeclaration, BackendOption


async def _open(url, options):
    raise AssertionError("never opened in these tests")


async def _detect(first, url, options):
    return False


OPTIONS = (
    BackendOption(flag="--typedq-batch", dest="typedq_batch", config_key="typedq_batch", type=int, help="batch"),
    BackendOption(flag="--typedq-ratio", dest="typedq_ratio", config_key="typedq_ratio", type=float, help="ratio"),
    BackendOption(flag="--typedq-fast", dest="typedq_fast", config_key="typedq_fast", type=bool, help="fast"),
    BackendOption(flag="--typedq-port", dest="typedq_ports", config_key="typedq_ports", type=int, repeatable=True,
                  help="ports"),
)
DECLARATION = BackendDeclaration(name="typedq", url_kinds=("redis",), open=_open, detect=_detect,
                                 options=OPTIONS + EXTRA, order=30)
'''


@pytest.fixture
def plugin(tmp_path):
    """Install a backend package (a module and its dist-info with the entry point) on sys.path for
    this test, as pip would, and forget it afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    modules = []

    def install(extra: str = "()") -> None:
        name = f"qc_typedq_{uuid.uuid4().hex[:8]}"
        (root / f"{name}.py").write_text(PLUGIN.replace("OPTIONS + EXTRA", f"OPTIONS + {extra}"))
        info = root / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[queue_console.backends]\ntypedq = {name}:DECLARATION\n")
        modules.append(name)
        sys.path.insert(0, str(root))
        _forget()

    def _forget() -> None:
        import importlib

        importlib.invalidate_caches()
        declarations.cache_clear()
        declared_options.cache_clear()

    yield install
    while str(root) in sys.path:
        sys.path.remove(str(root))
    for name in modules:
        sys.modules.pop(name, None)
    _forget()


def test_typed_options_are_converted_on_the_command_line_and_checked_in_the_config(plugin, isolated_env, capsys):
    plugin()
    isolated_env.write_text("typedq_batch = 5\ntypedq_ratio = 2\ntypedq_fast = true\ntypedq_ports = 7000\n"
                               "[contexts.c]\ntypedq_ratio = 0.5\ntypedq_fast = false\ntypedq_ports = [1, 2]\n")
    s = _settings()
    assert (s.typedq_batch, s.typedq_ratio, s.typedq_fast, s.typedq_ports) == (5, 2.0, True, [7000])
    assert isinstance(s.typedq_ratio, float)
    s = _settings("--context", "c")
    assert (s.typedq_batch, s.typedq_ratio, s.typedq_fast, s.typedq_ports) == (5, 0.5, False, [1, 2])
    s = _settings("--context", "c", "--typedq-batch", "9", "--typedq-fast", "--typedq-port", "3",
                  "--typedq-ratio", "1.5")
    assert (s.typedq_batch, s.typedq_ratio, s.typedq_fast, s.typedq_ports) == (9, 1.5, True, [3])
    assert _settings("--no-typedq-fast").typedq_fast is False  # a flag turns a file's true off
    options = connect_options(_settings("status", "--typedq-batch", "4"))  # after the verb too
    assert (options.typedq_batch, options.typedq_fast, options.typedq_ports) == (4, True, [7000])

    for argv, words in ((["--typedq-batch", "many"], ("--typedq-batch", "invalid int value: 'many'")),
                        (["status", "--typedq-port", "1.5"], ("--typedq-port", "invalid int value: '1.5'")),
                        (["--typedq-ratio", "half"], ("--typedq-ratio", "invalid float value: 'half'"))):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert all(w in err for w in words), err

    for text, key, value, kind in (
            ('typedq_batch = "5"', "typedq_batch", "'5'", "an integer"),
            ("typedq_batch = 1.5", "typedq_batch", "1.5", "an integer"),
            ("typedq_batch = true", "typedq_batch", "True", "an integer"),
            ('typedq_ratio = "x"', "typedq_ratio", "'x'", "a number"),
            ("typedq_fast = 1", "typedq_fast", "1", "true or false"),
            ('typedq_ports = [1, "2"]', "typedq_ports", "[1, '2']", "a list of integers"),
            ('[contexts.c]\ntypedq_fast = "yes"', "contexts.c.typedq_fast", "'yes'", "true or false")):
        isolated_env.write_text(text + "\n")
        with pytest.raises(ConfigError) as bad:
            check_file(isolated_env)
        assert f"config file {isolated_env}: key '{key}': bad value {value}: expected {kind}" == str(bad.value)
        with pytest.raises(SystemExit) as info:  # and every command refuses it, exit 2
            main(["config", "check"])
        assert info.value.code == 2 and f"key '{key}'" in capsys.readouterr().err


def test_a_declaration_of_a_bad_type_is_refused():
    with pytest.raises(TypeError, match="type must be one of"):
        BackendOption(flag="--x", dest="x", config_key="x", help="", type=list)
    with pytest.raises(TypeError, match="cannot be repeatable"):
        BackendOption(flag="--x", dest="x", config_key="x", help="", type=bool, repeatable=True)


@pytest.mark.parametrize("extra, words", [
    # another backend's flag taken without saying it is shared
    ('(BackendOption(flag="--schema", dest="schema", config_key="schema", metavar="SCHEMA", help="mine"),)',
     ("--schema", "pgboss", "typedq", "shared=True")),
    # shared, but of another type than the other declarations of it
    ('(BackendOption(flag="--prefix", dest="prefixes", config_key="prefixes", metavar="PREFIX", shared=True, '
     'help="mine"),)', ("--prefix", "declared differently")),
    # a generic field's name
    ('(BackendOption(flag="--typedq-timeout", dest="op_timeout", config_key="typedq_timeout", help=""),)',
     ("op_timeout", "ConnectOptions field")),
    # a config key another flag uses
    ('(BackendOption(flag="--typedq-schema", dest="typedq_schema", config_key="schema", help=""),)',
     ("--schema", "--typedq-schema", "'schema'")),
])
def test_conflicting_declarations_are_refused_naming_them(plugin, extra, words):
    plugin(extra)
    with pytest.raises(TypeError) as info:
        backend_options()
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_shared_option_declared_alike_joins_the_others(plugin):
    plugin('(BackendOption(flag="--schema", dest="schema", config_key="schema", metavar="SCHEMA", shared=True, '
           'help="with --backend typedq: its schema"),)')
    assert "typedq" in {d.name for d in declarations() for o in d.options if o.flag == "--schema"}
    assert "with --backend typedq: its schema" in " ".join(build_parser().format_help().split())
