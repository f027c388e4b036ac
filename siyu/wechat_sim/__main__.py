"""``python -m siyu.wechat_sim [--host H] [--port P] [--siyu-url URL] [--seed N] [--drive PER_MINUTE]``.

Runs the WeChat simulator. With ``--drive`` simulated consumers (``siyu.wechat_sim.consumers``) act on it
from the start, that many actions a minute, deterministic for ``--drive-seed``; they wait quietly until
Siyu has registered apps and created codes. They can also be started later: ``POST /_sim/consumers/start``.
"""

from __future__ import annotations

import argparse

from siyu.wechat_sim.consumers import driver_start
from siyu.wechat_sim.server import Simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="siyu-wechat-sim", description="Local WeChat simulator (SPEC W5)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--siyu-url", default="http://127.0.0.1:8000", help="where callbacks are delivered")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drive", type=float, default=0, metavar="PER_MINUTE",
                        help="simulated consumers taking this many actions a minute (0: none)")
    parser.add_argument("--drive-seed", type=int, default=None, help="seed of the consumers (default: --seed)")
    args = parser.parse_args(argv)
    if args.drive < 0:
        parser.error("--drive must be zero or positive")
    sim = Simulator(siyu_url=args.siyu_url, seed=args.seed)
    print(f"WeChat simulator on http://{args.host}:{args.port} (callbacks to {args.siyu_url})", flush=True)
    if args.drive:
        seed = args.seed if args.drive_seed is None else args.drive_seed
        driver_start(sim, per_minute=args.drive, seed=seed)
        print(f"simulated consumers: {args.drive:g} actions a minute (seed {seed})", flush=True)
    sim.serve_forever(args.host, args.port)


if __name__ == "__main__":
    main()
