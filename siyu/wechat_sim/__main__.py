"""``python -m siyu.wechat_sim [--host H] [--port P] [--siyu-url URL]``: run the WeChat simulator."""

from __future__ import annotations

import argparse

from siyu.wechat_sim.server import Simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="siyu-wechat-sim", description="Local WeChat simulator (SPEC W5)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--siyu-url", default="http://127.0.0.1:8000", help="where callbacks are delivered")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = Simulator(siyu_url=args.siyu_url, seed=args.seed)
    print(f"WeChat simulator on http://{args.host}:{args.port} (callbacks to {args.siyu_url})", flush=True)
    sim.serve_forever(args.host, args.port)


if __name__ == "__main__":
    main()
