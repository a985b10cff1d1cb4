"""`weir dev`: the local cluster — up, down, status.

`weir dev up` runs NATS with JetStream, the local Kubernetes API server and every Weir service
on this machine, waits until each is ready, writes a kubeconfig, and stays in the foreground
until Ctrl-C (or, with `--detach`, leaves a supervisor running and returns). `weir dev down`
removes everything it made. State lives in `$WEIR_STATE_DIR`, default `.weir/dev` under the
repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from weir import netns
from weir.cli import context

from weir_local.cluster.plan import Plan, Ports, health_port_names
from weir_local.cluster.state import ClusterState, StateFile, pid_alive, sweep
from weir_local.cluster.supervisor import StartError, Supervisor
from weir_local.pods import Cluster, LocalPod, PodLookupError
from weir_local.probe import Result, Target, probe

BIN_DIR = Path(sys.executable).parent


def register(commands: Any) -> None:
    dev = commands.add_parser("dev", help="the local cluster (NATS, API server, services)")
    sub = dev.add_subparsers(dest="dev_command", metavar="SUBCOMMAND", required=True)

    up = sub.add_parser("up", help="start a local cluster and wait until it is ready")
    up.add_argument("--nodes", type=int, default=1, help="number of nodes (default 1)")
    up.add_argument(
        "--detach", action="store_true", help="return once ready and leave the cluster running"
    )
    up.add_argument("--nats-port", type=int, default=4222, help="NATS port (0: any free one)")
    up.add_argument("--api-port", type=int, default=6443, help="API server port (0: any free one)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    up.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the local cluster and remove all it made")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="show each component and whether it is ready")
    status.set_defaults(func=cmd_status)

    run = sub.add_parser("exec", help="run a command in a pod's network namespace")
    run.add_argument("pod", metavar="NS/POD")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD...")
    run.set_defaults(func=cmd_exec)

    one = sub.add_parser("probe", help="is TO reachable from FROM? (exit 0 yes, 1 no, 2 usage)")
    one.add_argument("source", metavar="FROM", help="NS/POD")
    one.add_argument("target", metavar="TO", help="NS/POD, an IP, or svc:NS/NAME")
    one.add_argument("port", type=int)
    one.add_argument("--protocol", choices=("tcp", "udp"), default="tcp")
    one.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    one.add_argument("--json", action="store_true", help="print the result as JSON")
    one.set_defaults(func=cmd_probe)

    matrix = sub.add_parser("probe-matrix", help="probe every ordered pair of pods (JSON)")
    matrix.add_argument("--pods", required=True, help="NS/POD,NS/POD,...")
    matrix.add_argument("--port", type=int, required=True)
    matrix.add_argument("--protocol", choices=("tcp", "udp"), default="tcp")
    matrix.add_argument("--timeout", type=float, default=2.0, help="seconds per probe")
    matrix.set_defaults(func=cmd_probe_matrix)


def _ports(requested: dict[str, int]) -> dict[str, int]:
    """A port for each name: the one requested, or (for 0) a free one. Every socket stays
    bound until all are chosen, so two names can never be handed the same free port."""
    sockets: list[socket.socket] = []
    chosen: dict[str, int] = {}
    try:
        for what, port in requested.items():
            s = socket.socket()
            sockets.append(s)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise SystemExit(
                    f"weir dev up: port {port} for {what} is in use; "
                    f"pass --{what}-port 0 for any free port"
                ) from None
            chosen[what] = int(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return chosen


def _plan(args: argparse.Namespace, state_dir: Path) -> Plan:
    if args.nodes < 1:
        raise SystemExit("weir dev up: --nodes must be at least 1")
    nodes = tuple(f"node-{i}" for i in range(1, args.nodes + 1))
    health = health_port_names(nodes)
    ports = _ports({"nats": args.nats_port, "api": args.api_port} | dict.fromkeys(health, 0))
    return Plan(
        state_dir=state_dir,
        bin_dir=BIN_DIR,
        nodes=nodes,
        ports=Ports(nats=ports["nats"], api=ports["api"], health={n: ports[n] for n in health}),
    )


def cmd_up(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("weir dev up: run as root (nodes and pods are network namespaces)", file=sys.stderr)
        return 1
    state_dir = context.state_dir()
    files = StateFile(state_dir)
    if args.supervise:  # the detached supervisor, started by _detach below
        return _run(_plan(args, state_dir), args.timeout, detached=True)
    existing = files.read()
    if existing is not None and pid_alive(existing.supervisor_pid):
        print(
            f"weir dev up: a local cluster is already running (state in {state_dir}); "
            "`weir dev down` stops it",
            file=sys.stderr,
        )
        return 1
    sweep(state_dir)  # leftovers of a cluster that did not shut down cleanly
    plan = _plan(args, state_dir)
    if args.detach:
        return _detach(args, plan)
    return _run(plan, args.timeout, detached=False)


def _detach(args: argparse.Namespace, plan: Plan) -> int:
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    log = plan.state_dir / "supervisor.log"
    argv = [
        str(BIN_DIR / "weir"),
        "dev",
        "up",
        "--supervise",
        "--nodes",
        str(args.nodes),
        "--nats-port",
        str(plan.ports.nats),
        "--api-port",
        str(plan.ports.api),
        "--timeout",
        str(args.timeout),
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    files = StateFile(plan.state_dir)
    deadline = time.monotonic() + args.timeout + 30
    while time.monotonic() < deadline:
        state = files.read()
        if state is not None and state.supervisor_pid == proc.pid:
            if state.ready:
                print(_summary(state, detached=True))
                return 0
            if state.error:
                print(f"weir dev up: {state.error}", file=sys.stderr)
                return 1
        if proc.poll() is not None:
            print(
                f"weir dev up: the supervisor exited with code {proc.returncode}; see {log}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    print(f"weir dev up: not ready after {args.timeout:.0f}s; see {log}", file=sys.stderr)
    return 1


def _run(plan: Plan, timeout: float, *, detached: bool) -> int:
    def event(msg: str) -> None:
        print(f"  {msg}", flush=True)

    supervisor = Supervisor(plan, ready_timeout=timeout, on_event=event)
    return asyncio.run(_supervise(supervisor, detached=detached))


async def _supervise(sup: Supervisor, *, detached: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    keep_state = False
    print(f"Starting the Weir local cluster (state: {sup.plan.state_dir})", flush=True)
    work = asyncio.ensure_future(sup.start())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()  # raises StartError
            print(_summary(sup.state, detached=detached), flush=True)
            work = asyncio.ensure_future(sup.watch())
            await stop.wait()
        print("Stopping the Weir local cluster", flush=True)
    except StartError as e:
        sup.state.error = str(e)
        sup.state_file.write(sup.state)
        print(f"weir dev up: {e}", file=sys.stderr)
        print(f"Logs kept in {sup.logs}; `weir dev down` removes them.", file=sys.stderr)
        code, keep_state = 1, True
    finally:
        for task in (work, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await sup.stop()
        if not keep_state:
            sweep(sup.plan.state_dir)
    return code


def _summary(state: ClusterState, *, detached: bool) -> str:
    width = max(len(n) for n in state.components) + 2
    lines = [
        "",
        "Weir local cluster is ready.",
        f"  {'NATS':<{width}}{state.nats_url}",
        f"  {'API server':<{width}}{state.api_url}",
    ]
    for name, comp in state.components.items():
        if name not in ("nats", "apiserver"):
            lines.append(f"  {name:<{width}}{comp.probe}")
    root = context.repo_root()
    lines += [
        "",
        "Use it with kubectl:",
        f"  export KUBECONFIG={state.kubeconfig}",
        f"  {root / '.weir/bin/kubectl'} get namespaces",
        "See what the dataplane sees:",
        f"  {BIN_DIR / 'weir'} kv ls weir-k8s",
        "",
        "Stop it with `weir dev down`" + ("." if detached else ", or Ctrl-C here."),
    ]
    return "\n".join(lines)


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = context.state_dir()
    done = sweep(state_dir)
    for line in done:
        print(line)
    if not done:
        print(f"no local cluster in {state_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = StateFile(context.state_dir()).read()
    if state is None or not pid_alive(state.supervisor_pid):
        print("no local cluster is running")
        return 1
    results = asyncio.run(_probe_all(state))
    width = max(len(n) for n in results) + 2
    for name, (ok, detail) in results.items():
        print(f"{name:<{width}}{'ready' if ok else 'NOT READY':<11}{detail}")
    return 0 if all(ok for ok, _ in results.values()) else 1


async def _probe_all(state: ClusterState) -> dict[str, tuple[bool, str]]:
    out: dict[str, tuple[bool, str]] = {}
    async with aiohttp.ClientSession() as http:
        for name, comp in state.components.items():
            if not pid_alive(comp.pid, comp.argv0):
                out[name] = (False, "not running")
            elif comp.probe.startswith("http"):
                try:
                    async with http.get(comp.probe, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        out[name] = (r.status == 200, f"pid {comp.pid}  {comp.probe}")
                except (aiohttp.ClientError, TimeoutError) as e:
                    out[name] = (False, f"{comp.probe}: {e}")
            else:
                out[name] = (True, f"pid {comp.pid}  {comp.probe}")
    return out


# --- pods: exec and probes ------------------------------------------------------------------------

USAGE = 2  # the exit code for a usage error, as `weir dev probe` documents


def _running_cluster() -> ClusterState:
    state = StateFile(context.state_dir()).read()
    if state is None or not pid_alive(state.supervisor_pid):
        raise SystemExit(f"weir dev: no local cluster is running in {context.state_dir()}")
    return state


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("weir dev exec: give a command after --", file=sys.stderr)
        return USAGE
    state = _running_cluster()

    async def find() -> str:
        async with aiohttp.ClientSession() as http:
            cluster = Cluster(http, state.api_url, state.cluster_id)
            return cluster.netns(await cluster.pod(args.pod))

    try:
        netns_name = asyncio.run(find())
    except PodLookupError as e:
        print(f"weir dev exec: {e}", file=sys.stderr)
        return USAGE
    # Switch this (only) thread for good, then become the command.
    target = os.open(netns.path_of(netns_name), os.O_RDONLY)
    netns.setns(target)
    try:
        os.execvp(command[0], command)
    except OSError as e:
        print(f"weir dev exec: {command[0]}: {e.strerror}", file=sys.stderr)
        return 127


def cmd_probe(args: argparse.Namespace) -> int:
    state = _running_cluster()

    async def go() -> tuple[LocalPod, Result]:
        async with aiohttp.ClientSession() as http:
            cluster = Cluster(http, state.api_url, state.cluster_id)
            source = await cluster.pod(args.source)
            target = await cluster.target(args.target)
            result = await probe(
                cluster.netns(source),
                target,
                args.port,
                protocol=args.protocol,
                within=args.timeout,
            )
            return source, result

    try:
        source, result = asyncio.run(go())
    except PodLookupError as e:
        print(f"weir dev probe: {e}", file=sys.stderr)
        return USAGE
    if args.json:
        print(
            json.dumps(
                {
                    "from": source.ref,
                    "to": args.target,
                    "port": args.port,
                    "protocol": args.protocol,
                    "reachable": result.reachable,
                    "answer": result.answer,
                    "error": result.error,
                    "ms": round(result.seconds * 1000, 2),
                }
            )
        )
    else:
        verdict = "reachable" if result.reachable else "NOT reachable"
        detail = f"answered {result.answer!r}" if result.reachable else result.error
        print(f"{source.ref} -> {args.target}:{args.port}/{args.protocol} {verdict} ({detail})")
    return 0 if result.reachable else 1


def cmd_probe_matrix(args: argparse.Namespace) -> int:
    refs = [r.strip() for r in args.pods.split(",") if r.strip()]
    if len(refs) < 2 or len(set(refs)) != len(refs):
        print("weir dev probe-matrix: --pods needs two or more distinct NS/POD", file=sys.stderr)
        return USAGE
    state = _running_cluster()

    async def go() -> dict[str, dict[str, bool]]:
        async with aiohttp.ClientSession() as http:
            cluster = Cluster(http, state.api_url, state.cluster_id)
            pods = {ref: await cluster.pod(ref) for ref in refs}
            pairs = [(a, b) for a in refs for b in refs if a != b]
            results = await asyncio.gather(
                *(
                    probe(
                        cluster.netns(pods[a]),
                        Target(pods[b].ip, frozenset({pods[b].name})),
                        args.port,
                        protocol=args.protocol,
                        within=args.timeout,
                    )
                    for a, b in pairs
                )
            )
            out: dict[str, dict[str, bool]] = {a: {} for a in refs}
            for (a, b), result in zip(pairs, results, strict=True):
                out[a][b] = result.reachable
            return out

    try:
        matrix = asyncio.run(go())
    except PodLookupError as e:
        print(f"weir dev probe-matrix: {e}", file=sys.stderr)
        return USAGE
    print(json.dumps({"from": matrix}, indent=2))
    return 0
