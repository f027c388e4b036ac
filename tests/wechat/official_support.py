"""Helpers for the 公众号 tests: an official account wired to the simulator with its callback URL set."""

from __future__ import annotations

from siyu.customers.models import Customer, Identity


def official_account(factory, sim, *, mode: str = "safe", **extra):
    """A registered 公众号 whose simulator twin calls back ``/wx/official/<appid>/callback`` in ``mode``."""
    secrets = {"message_mode": mode}
    if mode == "plain":
        secrets["encoding_aes_key"] = ""
    app = factory("official", extra={"message_mode": mode, **extra}, **secrets)
    with sim.lock:
        sim_app = sim.state.apps[app.appid]
        sim_app.callback_url = f"/wx/official/{app.appid}/callback"
        if mode == "plain":
            sim_app.encoding_aes_key = ""
    return app


def customer_of(workspace, *, kind: str, value: str, namespace: str = "") -> Customer | None:
    identity = Identity.objects.filter(workspace=workspace, kind=kind, namespace=namespace, value=value).first()
    return identity.customer if identity else None
