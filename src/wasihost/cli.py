"""The ``wasihost`` command: ``run`` the host, ``build`` plugins, sign and ``deploy`` bundles."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wasihost import __version__
from wasihost.boards import platform_check
from wasihost.config import DEFAULT_CONFIG_PATH, NODE_NAME, HostConfig, load_config
from wasihost.errors import WasihostError

if TYPE_CHECKING:
    from wasihost.boards.pi.doctor import HostFacts

LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _run(args: argparse.Namespace) -> int:
    from wasihost.host import Host
    from wasihost.web.server import serve

    config = load_config(args.config)
    logging.basicConfig(
        level=LEVELS[config.logging.level],
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    host = Host(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await host.run(stop, dev=args.dev, web=serve if config.web.enabled else None)

    try:
        asyncio.run(main())
    finally:
        clean = host.close()
    logging.getLogger("wasihost.host").info("wasihost stopped")
    if not clean:
        # A guest is still blocked inside a WASI call, on its own thread, in a
        # store we could not close. Finalising the interpreter would free
        # wasmtime objects under that thread: leave without finalising.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _build(args: argparse.Namespace) -> int:
    from wasihost.authoring.build import build

    build(
        args.names or None,
        plugins_dir=args.plugins_dir,
        wit_dir=args.wit,
        out_dir=args.out,
        jobs=args.jobs,
        echo=lambda line: print(line, flush=True),
        sources=args.components,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from wasihost.authoring.check import run_check

    config = load_config(args.config) if args.config.exists() or args.plugin else None
    return 0 if run_check(args.file, config, args.plugin) else 1


def _new(args: argparse.Namespace) -> int:
    from wasihost.authoring.scaffold import scaffold

    files, config = scaffold(args.name, args.world, args.plugins_dir, args.led)
    print(f"created plugin {args.name} (world {args.world}):")
    for path in files:
        print(f"  {path}")
    print(f"\ncheck it:   wasihost check {args.plugins_dir / args.name}")
    print(f"test it:    pytest {args.plugins_dir / args.name}")
    print(
        "run it: paste this into config/host.toml, then wasihost run (it runs from its "
        "folder in the shared Python runtime: no build; `wasihost build "
        f"{args.name}` makes a component of its own)\n\n{config}"
    )
    return 0


def _typecheck(args: argparse.Namespace) -> int:
    from wasihost.authoring.typecheck import typecheck

    return 0 if typecheck(args.names or None, args.plugins_dir, args.wit) else 1


def _reference(args: argparse.Namespace) -> int:
    from wasihost.authoring.reference import render_reference

    text = render_reference(args.wit.read_text(encoding="utf-8"))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


def doctor_facts(config: HostConfig) -> HostFacts:
    """What ``wasihost doctor`` needs from above the board layer, which it may
    not import: the devices and I2C addresses the enabled plugins' grants use,
    and why the compiled call plans cannot load (None when they can)."""
    from wasihost.boards.pi.doctor import HostFacts
    from wasihost.runtime import compiled
    from wasihost.runtime.contract import load_contract
    from wasihost.specs import devices_of, plugin_specs

    contract = load_contract()
    devices: set[str] = set()
    users: dict[int, list[str]] = {}
    for spec in plugin_specs(config, contract):
        devices |= devices_of(spec.grants, contract.worlds[spec.world].imports)
        for address in spec.grants.i2c_addresses:
            users.setdefault(address, []).append(spec.name)
    return HostFacts(
        devices=frozenset(devices),
        i2c_users={address: tuple(sorted(names)) for address, names in sorted(users.items())},
        call_plans=compiled.unavailable(),
    )


def _doctor(args: argparse.Namespace) -> int:
    from wasihost.boards.pi.doctor import run_doctor

    config = load_config(args.config)
    return run_doctor(config, lambda: doctor_facts(config))


def _bundle(args: argparse.Namespace) -> int:
    """``wasihost bundle keygen|create|verify|inspect|hash`` (docs/BUNDLES.md)."""
    from wasihost.bundle import commands

    def echo(line: str) -> None:
        print(line, flush=True)

    if args.bundle_command == "keygen":
        return commands.keygen(args.out, echo)
    if args.bundle_command == "create":
        # The grants it needs default to what this config gives a plugin of its name.
        config = load_config(args.config) if args.config.exists() else None
        return commands.create(
            args.plugin,
            args.key,
            args.version,
            args.output,
            args.grant,
            config,
            echo,
            name=args.name,
            world=args.world,
        )
    if args.bundle_command == "verify":
        return commands.verify(args.bundle, load_config(args.config), echo)
    if args.bundle_command == "inspect":
        return commands.inspect(args.bundle, echo)
    return commands.hash_(args.plugin, echo)


def _bundle_parser(commands: Any) -> None:
    bundle = commands.add_parser(
        "bundle", help="signed plugin bundles: make keys, create, verify, inspect, hash"
    )
    sub = bundle.add_subparsers(dest="bundle_command", required=True)
    keygen = sub.add_parser("keygen", help="a new Ed25519 signing key (OUT, OUT.pub)")
    keygen.add_argument("out", type=Path, help="the private key file to create (mode 0600)")
    create = sub.add_parser("create", help="sign a bundle of a plugin folder or .wasm")
    create.add_argument("plugin", type=Path, help="a source plugin's folder or a .wasm component")
    create.add_argument("--key", type=Path, required=True, help="the private key file")
    create.add_argument("--version", required=True, help="the plugin's version, e.g. 1.2.0")
    create.add_argument("-o", "--output", type=Path, help="default: NAME-VERSION.bundle")
    create.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="a grant the plugin needs, e.g. i2c_addresses=0x44 or buzzer=yes (repeatable; "
        "default: what --config grants a plugin of its name)",
    )
    create.add_argument("--name", help="the plugin's name (default: the folder's or file's)")
    create.add_argument("--world", help="a component's world (default: NAME-plugin)")
    create.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    verify = sub.add_parser(
        "verify", help="whether a node would install a bundle: exit 0 valid, 1 refused, 4 held"
    )
    verify.add_argument("bundle", type=Path)
    verify.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"the node's configuration, with its [trust] keys (default: {DEFAULT_CONFIG_PATH})",
    )
    inspect = sub.add_parser("inspect", help="show a bundle's manifest and files (unverified)")
    inspect.add_argument("bundle", type=Path)
    hash_ = sub.add_parser("hash", help="a plugin's content hash, as [plugins.<name>] pin takes it")
    hash_.add_argument("plugin", type=Path, help="a source plugin's folder or a .wasm component")
    bundle.set_defaults(handler=_bundle)


def _deploy(args: argparse.Namespace) -> int:
    """``wasihost deploy BUNDLE ...`` and ``wasihost deploy --status`` (docs/BUNDLES.md)."""
    from wasihost.config import parse_config
    from wasihost.deploy import deployer_mqtt as io
    from wasihost.deploy.deployer import Target

    def echo(line: str) -> None:
        print(line, flush=True)

    config_given = args.config is not None
    path = args.config if config_given else DEFAULT_CONFIG_PATH
    config = load_config(path) if config_given or path.exists() else parse_config({})
    settings = io.with_broker(config.mqtt, args.broker)
    if args.status:
        if args.bundle is not None or args.node or args.label or args.all:
            raise io.DeployError("--status takes no bundle and no targets (only --plugin)")
        return asyncio.run(io.status(settings, args.plugin, echo))
    if args.bundle is None:
        raise io.DeployError("give a BUNDLE to deploy (or --status)")
    chosen = [bool(args.node), args.label is not None, args.all]
    if sum(chosen) != 1:
        raise io.DeployError("give exactly one of --node ID..., --label L or --all")
    if args.canary and args.canary_label is not None:
        raise io.DeployError("give --canary ID... or --canary-label L, not both")
    if args.timeout <= 0:
        raise io.DeployError(f"--timeout {args.timeout:g}: expected seconds above 0")
    if args.plugin is not None:
        raise io.DeployError("--plugin is for --status; a bundle names its plugin")
    for flag, values in (
        ("--node", args.node),
        ("--canary", args.canary),
        ("--label", [args.label] if args.label is not None else []),
        ("--canary-label", [args.canary_label] if args.canary_label is not None else []),
    ):
        for value in values:
            if not re.match(NODE_NAME, value):
                raise io.DeployError(
                    f"{flag} {value}: not a node id or label (lower-case letters, digits, "
                    "'-' and '_'; one MQTT topic level)"
                )
    if args.node:
        target = Target("node", tuple(dict.fromkeys(args.node)))
    elif args.label is not None:
        target = Target("label", label=args.label)
    else:
        target = Target("all")
    canary = None
    if args.canary:
        canary = Target("node", tuple(dict.fromkeys(args.canary)))
    elif args.canary_label is not None:
        canary = Target("label", label=args.canary_label)
    keys = [(key, f"[trust] keys in {config.path}") for key in config.trust.keys]
    for pub in args.key_pub:
        try:
            keys.append((pub.read_text(encoding="utf-8"), f"--key-pub {pub}"))
        except OSError as exc:
            raise io.DeployError(f"--key-pub {pub}: {exc.strerror}") from None
    manifest, data = io.read_bundle(args.bundle, io.trusted_keys(keys))
    return asyncio.run(
        io.deploy(
            settings,
            manifest,
            data,
            target,
            canary,
            args.timeout,
            echo,
            settle_seconds=args.settle,
        )
    )


def _deploy_parser(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deliver a signed bundle to nodes over MQTT, canaries first; or --status",
        description="exit 0 every online target healthy, 1 stopped (a node rolled back, "
        "failed or refused it), 2 bad input, 5 timed out",
    )
    deploy.add_argument("bundle", type=Path, nargs="?", help="the .bundle file")
    deploy.add_argument("--status", action="store_true", help="show every node's versions")
    deploy.add_argument("--plugin", help="with --status: only this plugin")
    deploy.add_argument("--node", nargs="+", default=[], metavar="ID", help="target nodes")
    deploy.add_argument("--label", help="target the nodes with this [node] label")
    deploy.add_argument("--all", action="store_true", help="target every node")
    deploy.add_argument("--canary", nargs="+", default=[], metavar="ID", help="canary nodes")
    deploy.add_argument("--canary-label", help="the nodes with this label are the canaries")
    deploy.add_argument(
        "--timeout", type=float, default=900.0, help="seconds for the whole rollout (900)"
    )
    deploy.add_argument(
        "--settle",
        type=float,
        default=None,
        help="a label stage ends this many seconds after its last new node reported (5)",
    )
    deploy.add_argument(
        "--key-pub",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a trusted public key (the signer's .pub), besides --config's [trust] keys",
    )
    deploy.add_argument("--broker", metavar="HOST[:PORT]", help="overrides [mqtt] host and port")
    deploy.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"[mqtt] (address, credentials, TLS) and [trust] from here "
        f"(default: {DEFAULT_CONFIG_PATH} if it exists)",
    )
    deploy.set_defaults(handler=_deploy)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wasihost", description=__doc__)
    top.add_argument("--version", action="version", version=f"wasihost {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the host")
    run.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )
    run.add_argument(
        "--dev",
        action="store_true",
        help="also rebuild plugins when plugins/*/ or wit/ change (hot-reloaded)",
    )
    run.set_defaults(handler=_run)

    build = commands.add_parser(
        "build", help="build the shared Python runtime and component plugins (componentize-py)"
    )
    build.add_argument(
        "names",
        nargs="*",
        help="plugins to build as components (default: the shared runtime and every "
        'plugin with kind = "component")',
    )
    build.add_argument(
        "--components",
        action="store_true",
        help="also build source plugins as components of their own",
    )
    build.add_argument("--plugins-dir", type=Path, default=Path("plugins"))
    build.add_argument("--wit", type=Path, default=Path("wit"))
    build.add_argument("--out", type=Path, default=Path("build"))
    build.add_argument("-j", "--jobs", type=int, default=None, help="parallel builds")
    build.set_defaults(handler=_build)

    check = commands.add_parser(
        "check", help="explain a component's imports/exports and whether the config accepts it"
    )
    check.add_argument("file", type=Path, help="the .wasm component")
    check.add_argument("--plugin", help="the configured plugin to check it for")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    check.set_defaults(handler=_check)

    new = commands.add_parser("new", help="scaffold a plugin that builds and runs as it is")
    new.add_argument("name", help="plugin name: lower-case letters, digits and '-'")
    new.add_argument(
        "--world", default="sensor-plugin", help="the WIT world (default: %(default)s)"
    )
    new.add_argument("--led", type=int, default=3, help="LED index for the config block")
    new.add_argument("--plugins-dir", type=Path, default=Path("plugins"))
    new.set_defaults(handler=_new)

    types = commands.add_parser(
        "typecheck", help="mypy --strict on plugins, against their bindings"
    )
    types.add_argument("names", nargs="*", help="plugins to check (default: all)")
    types.add_argument("--plugins-dir", type=Path, default=Path("plugins"))
    types.add_argument("--wit", type=Path, default=Path("wit"))
    types.set_defaults(handler=_typecheck)

    reference = commands.add_parser(
        "reference", help="render the capability reference from the WIT doc comments"
    )
    reference.add_argument("--wit", type=Path, default=Path("wit/plugin.wit"))
    reference.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    reference.set_defaults(handler=_reference)

    doctor = commands.add_parser(
        "doctor", help="check this machine for the configured board and say how to fix it"
    )
    doctor.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH})",
    )
    doctor.set_defaults(handler=_doctor)
    _bundle_parser(commands)
    _deploy_parser(commands)
    return top


# Exit status when wasmtime cannot run on this machine (a 32-bit OS, issue 20).
EXIT_PLATFORM = 3


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Before any command imports wasmtime (every import of it is lazy, in a
    # handler): on a 32-bit OS it raises a bare RuntimeError. doctor reports
    # this itself, as its first finding.
    if args.command != "doctor":
        problem = platform_check.problem()
        if problem is not None:
            print(problem.render(), end="", file=sys.stderr)
            return EXIT_PLATFORM
    try:
        code: int = args.handler(args)
    except WasihostError as exc:
        print(f"wasihost: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
