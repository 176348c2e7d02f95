from __future__ import annotations

import pytest

from p2pstack.roots.daemon._flags import FlagError, HelpRequested, parse_duration, parse_flags


def test_defaults_are_p2pd_s() -> None:
    options = parse_flags([])
    assert options.listen == "/unix/tmp/p2pd.sock"
    assert options.host_addrs == ("/ip4/127.0.0.1/tcp/0",)
    assert options.security == ("noise", "tls")
    assert options.muxers == ("yamux", "mplex")
    assert options.relay is True and options.dht is None and options.pubsub is None
    assert options.quiet is False and options.key_file is None


def test_js_runner_spelling() -> None:
    options = parse_flags(
        [
            "-listen=/ip4/127.0.0.1/tcp/9999",
            "-hostAddrs=/ip4/127.0.0.1/tcp/0",
            "-plaintext=true",
            "-dhtServer",
            "-relay",
            "-pubsub",
            "-pubsubRouter=floodsub",
            "-id=/tmp/key",
            "-muxer=mplex",
        ]
    )
    assert options.listen == "/ip4/127.0.0.1/tcp/9999"
    assert options.security == ("plaintext",)
    assert options.dht == "server" and options.pubsub == "floodsub"
    assert options.key_file == "/tmp/key" and options.muxers == ("mplex",)


def test_space_separated_values_double_dashes_and_false() -> None:
    options = parse_flags(
        [
            "--listen",
            "/unix/x",
            "-hostAddrs",
            "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2",
            "-tls=false",
        ]
    )
    assert options.listen == "/unix/x"
    assert options.host_addrs == ("/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2")
    assert options.security == ("noise",)


def test_security_shorthand_client_dht_no_listen_bootstrap_quiet() -> None:
    options = parse_flags(
        [
            "-security",
            "tls",
            "-dhtClient",
            "-noListenAddrs",
            "-b",
            "-bootstrapPeers=/ip4/1.2.3.4/tcp/1/p2p/x",
            "-q",
        ]
    )
    assert options.security == ("tls",) and options.dht == "client"
    assert options.host_addrs == () and options.quiet is True
    assert options.bootstrap == ("/ip4/1.2.3.4/tcp/1/p2p/x",)
    assert parse_flags(["-bootstrapPeers=/a"]).bootstrap == ()  # only with -b


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-nope"], "flag provided but not defined: -nope"),
        (["-listen"], "flag needs an argument: -listen"),
        (["-dht=maybe"], 'invalid boolean value "maybe" for -dht'),
        (["-muxer=quic"], "unknown muxer"),
        (["-pubsubRouter=randomsub"], "unknown router"),
        (["-security=ssl"], "unknown channel"),
        (["-noise=false", "-tls=false"], "every security channel is switched off"),
        (["extra"], "unexpected argument"),
    ],
)
def test_bad_flags(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message):
        parse_flags(argv)


def test_help() -> None:
    with pytest.raises(HelpRequested):
        parse_flags(["-h"])


def test_connection_manager_flags_as_p2pclient_passes_them() -> None:
    options = parse_flags(["-connManager=true", "-connLo=1", "-connHi=2", "-connGrace=0"])
    assert options.conn_manager == (1, 2, 0.0)
    assert parse_flags(["-connManager"]).conn_manager == (256, 512, 120.0)
    assert parse_flags(["-connLo=1"]).conn_manager is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("20s", 20.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration("connGrace", text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "argv",
    [
        ["-connManager", "-connGrace=20"],
        ["-connManager", "-connLo=5", "-connHi=2"],
        ["-connManager", "-connHi=x"],
    ],
)
def test_bad_connection_manager_flags(argv: list[str]) -> None:
    with pytest.raises(FlagError):
        parse_flags(argv)
