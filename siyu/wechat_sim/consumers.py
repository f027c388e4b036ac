"""Simulated consumers: a population of WeChat users acting on whatever Siyu set up in the simulator.

The :class:`Driver` picks one action at a time among those possible right now, at a steady rate
(``per_minute``), deterministically for a seed: the same seed over the same simulator state gives the same
sequence of actions, users and targets. It uses the areas' own consumer actions, so every action reaches
Siyu exactly as a real one would (callbacks and notifications over ``Simulator.deliver``, i.e. HTTP when
the simulator runs as its own process):

- ``scan``: a new (or known) user scans one of the 公众号's parametric QR codes Siyu created
  (``mp.scan``: subscribe with ``qrscene_`` the first time, SCAN afterwards);
- ``subscribe``: a new user follows from search (no scene);
- ``text`` / ``menu``: a follower sends a message or clicks a CLICK button of the published menu;
- ``unsubscribe``: a follower leaves (rarely);
- ``miniapp``: a user opens the 小程序 (``wx.login`` → Siyu's login endpoint), sometimes binding a phone;
- ``add_staff``: a user adds a member through one of the 「联系我」 codes Siyu created (``work.add_contact``);
- ``join_group``: a user who added staff joins one of the corp's customer groups;
- ``pay``: the payer of an unpaid order Siyu created (a prepay) confirms it (``pay.pay``: signed notification);
- ``buy``: a user opens the 小程序 and shops in Siyu's store over its mini-program API (``/api/mini/v1/``):
  puts one or two SKUs in stock into the cart, checks out, asks for the payment parameters and pays
  (``pay.pay``). A store with nothing on sale is browsed and left (an ordinary outcome).

Run it inside the simulator process with ``python -m siyu.wechat_sim --drive <per-minute>`` or start/stop
it over HTTP (``POST /_sim/consumers/start {"per_minute": 30, "seed": 1}``, ``POST /_sim/consumers/stop``,
``POST /_sim/consumers/step {"count": 5}``, ``GET /_sim/consumers``).

WeChat keeps the QR tickets and 「联系我」 codes it issued across its own restarts; this simulator keeps
everything in memory. ``POST /_sim/codes/restore`` lets the demo hand back the codes Siyu holds after the
simulator process was restarted, so the driver finds them again (nothing is created in Siyu for that).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from siyu.wechat_sim import miniapp, mp, pay, work
from siyu.wechat_sim.server import SimError, SimRequest, SimResponse, Simulator, route
from siyu.wechat_sim.state import SimUser

SIM = "_sim"
# Relative weight of each action when it is possible; new people mostly arrive through channel QR codes.
DEFAULT_WEIGHTS: dict[str, float] = {
    "scan": 30, "subscribe": 4, "text": 14, "menu": 8, "unsubscribe": 1, "miniapp": 12, "add_staff": 14,
    "join_group": 6, "pay": 11, "buy": 7,
}
TEXTS = ("你好", "有优惠吗", "价格多少", "怎么购买", "会员", "退货", "敏感肌能用吗", "发货了吗", "客服", "谢谢")
NICKNAMES = ("小美", "Lily", "阿珍", "晴天", "糖糖", "Mia", "木子", "小鹿", "可乐", "Yuki", "七七", "安安")
LOG_SIZE = 200
MINI_API = "/api/mini/v1"
ADDRESSES = (("林晓雨", "上海市", "上海市", "静安区", "南京西路 1266 号"), ("王佳怡", "北京市", "北京市", "朝阳区", "三里屯路 19 号"),
             ("陈思", "广东省", "广州市", "天河区", "天河路 208 号"), ("张可", "浙江省", "杭州市", "西湖区", "文三路 90 号"),
             ("刘畅", "四川省", "成都市", "锦江区", "春熙路 8 号"))


@dataclass
class Outcome:
    """One action taken: what, by whom, on what, and how Siyu answered (HTTP status; 0 = unreachable)."""

    action: str
    user: str
    target: str
    status: int
    ok: bool
    detail: str = ""
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "user": self.user, "target": self.target, "status": self.status,
                "ok": self.ok, "detail": self.detail, "at": self.at}


@dataclass
class _People:
    """The driver's own view of its users (the simulator's state holds what WeChat knows about them)."""

    all: list[str] = field(default_factory=list)
    following: dict[str, set[str]] = field(default_factory=dict)  # appid -> user keys following
    contacts: dict[str, set[str]] = field(default_factory=dict)  # corpid -> user keys who added staff
    in_group: set[tuple[str, str]] = field(default_factory=set)  # (chat_id, user key)
    logged_in: set[tuple[str, str]] = field(default_factory=set)  # (miniapp appid, user key)
    phone_bound: set[tuple[str, str]] = field(default_factory=set)


class Driver:
    """Simulated consumers acting on one simulator. ``step()`` takes one action; ``start()`` runs a thread
    taking ``per_minute`` actions a minute until ``stop()``."""

    def __init__(self, sim: Simulator, *, per_minute: float = 30.0, seed: int = 0,
                 weights: dict[str, float] | None = None, new_user_share: float = 0.6):
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        unknown = set(weights or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown actions: {sorted(unknown)}")
        self.sim = sim
        self.per_minute = float(per_minute)
        self.seed = seed
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.new_user_share = new_user_share
        self.random = random.Random(seed)
        self.people = _People()
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.log: deque[Outcome] = deque(maxlen=LOG_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step_lock = threading.Lock()

    # --- what is possible now -----------------------------------------------------------------------------
    def _apps(self, kind: str) -> list[str]:
        with self.sim.lock:
            return sorted(app.appid for app in self.sim.state.apps.values() if app.kind == kind and (
                kind != "official" or app.callback_url))

    def _qr_tickets(self) -> list[mp.QrCode]:
        now = time.time()
        with self.sim.lock:
            codes = [code for code in mp.mp(self.sim).qrcodes.values()
                     if code.expires_at is None or code.expires_at > now + 5]
            known = {app.appid for app in self.sim.state.apps.values() if app.kind == "official" and app.callback_url}
        return sorted((code for code in codes if code.appid in known), key=lambda code: (code.appid, code.ticket))

    def _contact_ways(self) -> list[tuple[str, str]]:
        with self.sim.lock:
            state = work.work_state(self.sim)
            return sorted((corpid, way.config_id) for corpid, corp in state.corps.items()
                          if corpid in self.sim.state.apps for way in corp.contact_ways.values()
                          if any(userid in corp.staff and corp.staff[userid].status == 1 for userid in way.users))

    def _groups(self) -> list[tuple[str, str]]:
        with self.sim.lock:
            state = work.work_state(self.sim)
            return sorted((corpid, chat.chat_id) for corpid, corp in state.corps.items()
                          for chat in corp.groups.values() if not chat.dismissed)

    def _menu_keys(self, appid: str) -> list[str]:
        with self.sim.lock:
            menu = mp.mp(self.sim).menus.get(appid) or {}
        keys = []
        for button in menu.get("button", []):
            for item in button.get("sub_button") or [button]:
                if item.get("type") == "click" and item.get("key"):
                    keys.append(item["key"])
        return keys

    def _unpaid_orders(self) -> list[tuple[str, str]]:
        """(user key, prepay_id) of orders waiting for a payer this driver plays."""
        with self.sim.lock:
            state = self.sim.state.area("pay", pay.PayState)  # no platform key is made just to look
            found = []
            for order in state.orders.values():
                if order.trade_state != "NOTPAY" or not order.prepay_id:
                    continue
                user = self.sim.state.user_by_openid(order.appid, order.payer_openid)
                if user is not None:
                    found.append((user.key, order.prepay_id))
        return sorted(found)

    def possible(self) -> dict[str, Callable[[], Outcome]]:
        """The actions that can happen now, each as a thunk (choices inside are drawn when it runs)."""
        actions: dict[str, Callable[[], Outcome]] = {}
        tickets = self._qr_tickets()
        officials = self._apps("official")
        followers = {appid: sorted(self.people.following.get(appid, ())) for appid in officials}
        if tickets:
            actions["scan"] = lambda: self._scan(tickets)
        if officials:
            actions["subscribe"] = lambda: self._subscribe(officials)
        if any(followers.values()):
            actions["text"] = lambda: self._text(followers)
            actions["unsubscribe"] = lambda: self._unsubscribe(followers)
            with_menu = {appid: keys for appid in officials if followers[appid] and (keys := self._menu_keys(appid))}
            if with_menu:
                actions["menu"] = lambda: self._menu(followers, with_menu)
        miniapps = self._apps("miniapp")
        if miniapps:
            actions["miniapp"] = lambda: self._miniapp(miniapps)
            actions["buy"] = lambda: self._buy(miniapps)
        ways = self._contact_ways()
        if ways:
            actions["add_staff"] = lambda: self._add_staff(ways)
        groups = self._groups()
        if groups and any(self.people.contacts.get(corpid) for corpid, _ in groups):
            actions["join_group"] = lambda: self._join_group(groups)
        orders = self._unpaid_orders()
        if orders:
            actions["pay"] = lambda: self._pay(orders)
        return {name: thunk for name, thunk in actions.items() if self.weights.get(name, 0) > 0}

    # --- one action -----------------------------------------------------------------------------------------
    def step(self) -> Outcome | None:
        """Take one action (None when nothing is possible yet: no apps or codes registered)."""
        with self._step_lock:
            actions = self.possible()
            if not actions:
                return None
            names = sorted(actions)
            name = self.random.choices(names, weights=[self.weights[n] for n in names])[0]
            try:
                outcome = actions[name]()
            except SimError as error:  # e.g. a code expired or a member left meanwhile: WeChat refuses
                outcome = Outcome(name, "", "", error.status, False, f"{error.errcode} {error.errmsg}")
            except Exception as error:  # one broken action must not stop the crowd
                outcome = Outcome(name, "", "", 0, False, f"{type(error).__name__}: {error}")
            self.counts[name] += 1
            if not outcome.ok:
                self.failures[name] += 1
            self.log.append(outcome)
            return outcome

    def _user(self, *, new: bool | None = None, among: list[str] | None = None) -> SimUser:
        pool = among if among is not None else self.people.all
        if new is None:
            new = not pool or self.random.random() < self.new_user_share
        if new:
            key = f"c{self.seed}-{len(self.people.all) + 1:05d}"
            self.people.all.append(key)
            nickname = self.random.choice(NICKNAMES) + str(self.random.randrange(10, 99))
            with self.sim.lock:
                return self.sim.state.user(key, nickname=nickname)
        key = self.random.choice(pool)
        with self.sim.lock:
            return self.sim.state.user(key)

    @staticmethod
    def _delivered(action: str, user: SimUser, target: str, status: int, detail: str = "") -> Outcome:
        return Outcome(action, user.key, target, status, 200 <= status < 300, detail)

    def _scan(self, tickets: list[mp.QrCode]) -> Outcome:
        code = self.random.choice(tickets)
        user = self._user()
        delivery = mp.scan(self.sim, user, code.ticket)
        if 200 <= delivery.status < 300:
            self.people.following.setdefault(code.appid, set()).add(user.key)
        return self._delivered("scan", user, code.scene, delivery.status)

    def _subscribe(self, officials: list[str]) -> Outcome:
        appid = self.random.choice(officials)
        user = self._user(new=True)
        delivery = mp.subscribe(self.sim, user, appid)
        if 200 <= delivery.status < 300:
            self.people.following.setdefault(appid, set()).add(user.key)
        return self._delivered("subscribe", user, appid, delivery.status)

    def _follower(self, followers: dict[str, list[str]]) -> tuple[str, SimUser]:
        appid = self.random.choice(sorted(appid for appid, keys in followers.items() if keys))
        return appid, self._user(new=False, among=followers[appid])

    def _text(self, followers: dict[str, list[str]]) -> Outcome:
        appid, user = self._follower(followers)
        text = self.random.choice(TEXTS)
        delivery = mp.send_text(self.sim, user, appid, text)
        return self._delivered("text", user, text, delivery.status, delivery.reply[:200])

    def _menu(self, followers: dict[str, list[str]], with_menu: dict[str, list[str]]) -> Outcome:
        appid = self.random.choice(sorted(with_menu))
        user = self._user(new=False, among=followers[appid])
        key = self.random.choice(with_menu[appid])
        return self._delivered("menu", user, key, mp.click_menu(self.sim, user, appid, key).status)

    def _unsubscribe(self, followers: dict[str, list[str]]) -> Outcome:
        appid, user = self._follower(followers)
        delivery = mp.unsubscribe(self.sim, user, appid)
        self.people.following.get(appid, set()).discard(user.key)
        return self._delivered("unsubscribe", user, appid, delivery.status)

    def _miniapp(self, miniapps: list[str]) -> Outcome:
        appid = self.random.choice(miniapps)
        user = self._user()
        status, answer = miniapp.miniapp_open(self.sim, user, appid)
        detail = ""
        token = answer.get("token") if isinstance(answer.get("token"), str) else ""
        if 200 <= status < 300:
            self.people.logged_in.add((appid, user.key))
            # about a third bind their phone the first time (the "use my WeChat phone number" button)
            if token and (appid, user.key) not in self.people.phone_bound and self.random.random() < 0.35:
                phone_status, _ = miniapp.miniapp_bind_phone(self.sim, user, appid, token)
                detail = f"phone {phone_status}"
                if 200 <= phone_status < 300:
                    self.people.phone_bound.add((appid, user.key))
        else:
            detail = str(answer.get("code") or "")
        return self._delivered("miniapp", user, appid, status, detail)

    def _add_staff(self, ways: list[tuple[str, str]]) -> Outcome:
        corpid, config_id = self.random.choice(ways)
        user = self._user()
        result = work.add_contact(self.sim, user, corpid, config_id)
        if 200 <= result["status"] < 300:
            self.people.contacts.setdefault(corpid, set()).add(user.key)
        return self._delivered("add_staff", user, f"{config_id}→{result['userid']}", result["status"])

    def _join_group(self, groups: list[tuple[str, str]]) -> Outcome:
        corpid, chat_id = self.random.choice([item for item in groups if self.people.contacts.get(item[0])])
        user = self._user(new=False, among=sorted(self.people.contacts[corpid]))
        if (chat_id, user.key) in self.people.in_group:
            status = work.leave_group(self.sim, user, corpid, chat_id)
            self.people.in_group.discard((chat_id, user.key))
            return self._delivered("join_group", user, f"{chat_id} (left)", status)
        status = work.join_group(self.sim, user, corpid, chat_id)
        if 200 <= status < 300:
            self.people.in_group.add((chat_id, user.key))
        return self._delivered("join_group", user, chat_id, status)

    def _pay(self, orders: list[tuple[str, str]]) -> Outcome:
        user_key, prepay_id = self.random.choice(orders)
        with self.sim.lock:
            user = self.sim.state.user(user_key)
        result = pay.pay(self.sim, user, prepay_id)
        statuses = result.notifications
        status = statuses[-1] if statuses else 200  # held back by a fault: WeChat delivers it later
        return self._delivered("pay", user, result.out_trade_no, status)

    def _mini_api(self, method: str, path: str, token: str, payload: Any = None) -> tuple[int, Any]:
        """One call of the mini-program to Siyu's store API (JSON; ``None`` when the answer is not JSON)."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps(payload).encode() if payload is not None else b""
        status, answer = self.sim.deliver(MINI_API + path, body, headers, method=method)
        try:
            return status, json.loads(answer or b"null")
        except ValueError:
            return status, None

    def _buy(self, miniapps: list[str]) -> Outcome:
        """Open the 小程序, put 1–2 SKUs in stock into the cart, check out, prepay and pay."""
        appid = self.random.choice(miniapps)
        user = self._user()
        status, answer = miniapp.miniapp_open(self.sim, user, appid)
        token = answer.get("token") if isinstance(answer.get("token"), str) else ""
        if not 200 <= status < 300 or not token:
            return self._delivered("buy", user, "login", status or 0, str(answer.get("code") or ""))
        self.people.logged_in.add((appid, user.key))
        status, listing = self._mini_api("GET", "/products", token)
        items = [item for item in (listing or {}).get("items", []) if isinstance(item, dict)
                 and not item.get("sold_out")] if isinstance(listing, dict) else []
        if not 200 <= status < 300 or not items:
            return self._delivered("buy", user, "browse", status, "nothing on sale")
        chosen = self.random.sample(items, k=min(len(items), self.random.choice((1, 1, 2))))
        added = 0
        for item in chosen:
            status, product = self._mini_api("GET", f"/products/{item['id']}", token)
            skus = [sku for sku in (product or {}).get("skus", []) if sku.get("available", 0) > 0] \
                if isinstance(product, dict) else []
            if not 200 <= status < 300 or not skus:
                continue
            sku = self.random.choice(skus)
            status, _ = self._mini_api("POST", "/cart/items", token, {"sku_id": sku["id"], "quantity": 1})
            if not 200 <= status < 300:
                return self._delivered("buy", user, f"cart {sku['id']}", status, "add to cart refused")
            added += 1
        if not added:
            return self._delivered("buy", user, "browse", 200, "sold out")
        name, province, city, district, street = self.random.choice(ADDRESSES)
        phone = "13" + "".join(str(self.random.randrange(10)) for _ in range(9))
        status, order = self._mini_api("POST", "/checkout", token, {"address": {
            "name": name, "phone": phone, "province": province, "city": city, "district": district,
            "detail": street}})
        if not 200 <= status < 300 or not isinstance(order, dict) or not order.get("number"):
            return self._delivered("buy", user, "checkout", status, str((order or {}).get("code") or "")
                                   if isinstance(order, dict) else "")
        number = order["number"]
        status, prepay = self._mini_api("POST", f"/orders/{number}/prepay", token, {})
        if not 200 <= status < 300 or not isinstance(prepay, dict) or not prepay.get("prepay_id"):
            return self._delivered("buy", user, number, status, "prepay refused")
        with self.sim.lock:
            user = self.sim.state.user(user.key)
        result = pay.pay(self.sim, user, prepay["prepay_id"])
        statuses = result.notifications
        status = statuses[-1] if statuses else 200  # held back by a fault: WeChat delivers it later
        return self._delivered("buy", user, number, status, f"paid {order.get('total_fen', 0)} fen")

    # --- running --------------------------------------------------------------------------------------------
    def run(self, *, max_actions: int | None = None) -> None:
        """Take actions at ``per_minute`` (exponential gaps, mean 60/per_minute s) until stopped."""
        gaps = random.Random(self.seed + 1)  # timing never changes which actions are drawn
        taken = 0
        while not self._stop.is_set() and (max_actions is None or taken < max_actions):
            if self._stop.wait(min(gaps.expovariate(self.per_minute / 60.0), 600.0)):
                break
            if self.step() is not None:
                taken += 1

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="wechat-sim-consumers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def summary(self) -> dict[str, Any]:
        return {"running": self.running, "per_minute": self.per_minute, "seed": self.seed,
                "users": len(self.people.all), "counts": dict(sorted(self.counts.items())),
                "failures": dict(sorted(self.failures.items())),
                "recent": [outcome.as_dict() for outcome in list(self.log)[-20:]]}


# --- the driver of a simulator (one per Simulator) ---------------------------------------------------------------
def driver_of(sim: Simulator) -> Driver | None:
    return sim.state.area("consumers", dict).get("driver")


def driver_start(sim: Simulator, *, per_minute: float, seed: int = 0,
                 weights: dict[str, float] | None = None) -> Driver:
    """(Re)start the simulator's consumers at ``per_minute``; a running driver is stopped first."""
    slot = sim.state.area("consumers", dict)
    old = slot.get("driver")
    if old is not None:
        old.stop()
    driver = Driver(sim, per_minute=per_minute, seed=seed, weights=weights)
    slot["driver"] = driver
    driver.start()
    return driver


def _payload(request: SimRequest) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise SimError(40097, "a JSON object is required", status=400)
    return payload


def _number(payload: dict[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SimError(40097, f"{name} must be a number from {low} to {high}", status=400)
    return value


@route("POST", SIM, "/consumers/start")
def control_start(sim: Simulator, request: SimRequest) -> SimResponse:
    payload = _payload(request)
    per_minute = _number(payload, "per_minute", 30, low=0.01, high=6000)
    seed = int(_number(payload, "seed", 0, low=0, high=2**31))
    weights = payload.get("weights")
    if weights is not None and (not isinstance(weights, dict) or set(weights) - set(DEFAULT_WEIGHTS) or not all(
            isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            for value in weights.values())):
        raise SimError(40097, f"weights: non-negative numbers for {sorted(DEFAULT_WEIGHTS)}", status=400)
    return SimResponse.json(driver_start(sim, per_minute=per_minute, seed=seed, weights=weights).summary())


@route("POST", SIM, "/consumers/stop")
def control_stop(sim: Simulator, request: SimRequest) -> SimResponse:
    driver = driver_of(sim)
    if driver is not None:
        driver.stop()
    return SimResponse.json(driver.summary() if driver else {"running": False})


@route("POST", SIM, "/consumers/step")
def control_step(sim: Simulator, request: SimRequest) -> SimResponse:
    """Take ``count`` actions now (the driver keeps its seed and people; one is made if none runs)."""
    payload = _payload(request)
    count = int(_number(payload, "count", 1, low=1, high=500))
    slot = sim.state.area("consumers", dict)
    driver = slot.get("driver")
    if driver is None:
        driver = slot["driver"] = Driver(sim, per_minute=30, seed=int(_number(payload, "seed", 0, low=0, high=2**31)))
    outcomes = [driver.step() for _ in range(count)]
    return SimResponse.json([outcome.as_dict() if outcome else None for outcome in outcomes])


@route("GET", SIM, "/consumers")
def control_summary(sim: Simulator, request: SimRequest) -> SimResponse:
    driver = driver_of(sim)
    return SimResponse.json(driver.summary() if driver else {"running": False, "counts": {}, "recent": []})


# --- codes Siyu holds, handed back after a restart -----------------------------------------------------------------
@route("POST", SIM, "/codes/restore")
def control_codes_restore(sim: Simulator, request: SimRequest) -> SimResponse:
    """``{"qrcodes": [{appid, ticket, scene, permanent, expires_at?, url?}], "contact_ways": [{corpid,
    config_id, state, users, remark?}], "groups": [{corpid, chat_id, owner, name?}], "menus": {appid: menu}}``:
    what this WeChat held before it restarted (as Siyu recorded it). Known tickets, config ids and groups
    are left as they are; entries of unregistered apps are refused (nothing is restored then)."""
    payload = _payload(request)
    qrcodes, ways = payload.get("qrcodes") or [], payload.get("contact_ways") or []
    groups, menus = payload.get("groups") or [], payload.get("menus") or {}
    if not isinstance(qrcodes, list) or not isinstance(ways, list) or not isinstance(groups, list) \
            or not isinstance(menus, dict):
        raise SimError(40097, "qrcodes, contact_ways and groups must be lists, menus an object", status=400)
    _restore_check(sim, qrcodes, ways, groups, menus)
    restored = {"qrcodes": 0, "contact_ways": 0, "groups": 0, "menus": 0}
    with sim.lock:
        codes = mp.mp(sim).qrcodes
        for item in qrcodes:
            if item["ticket"] in codes:
                continue
            permanent = bool(item.get("permanent"))
            expires_at = None if permanent else float(item["expires_at"])
            codes[item["ticket"]] = mp.QrCode(item["appid"], item["ticket"],
                                              "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE", item["scene"],
                                              expires_at, str(item.get("url") or ""))
            restored["qrcodes"] += 1
        state = work.work_state(sim)
        for item in ways:
            corp = state.corp(item["corpid"])
            if item["config_id"] in corp.contact_ways:
                continue
            corp.contact_ways[item["config_id"]] = work.ContactWay(
                item["config_id"], 2, 2, [str(user) for user in item["users"]], str(item.get("state") or "")[:30],
                str(item.get("remark") or "")[:30], True, f"https://wework.qpic.cn/wwpic/{item['config_id']}/0")
            restored["contact_ways"] += 1
        for item in groups:
            corp = state.corp(item["corpid"])
            if item["chat_id"] in corp.groups:
                continue
            corp.groups[item["chat_id"]] = work.GroupChat(item["chat_id"], str(item.get("name") or "")[:128],
                                                          item["owner"], int(time.time()), {item["owner"]: {
                                                              "userid": item["owner"], "type": 1,
                                                              "join_time": int(time.time()), "join_scene": 1}})
            restored["groups"] += 1
        for appid, menu in menus.items():
            if appid not in mp.mp(sim).menus:
                mp.mp(sim).menus[appid] = {"button": menu["button"]}
                restored["menus"] += 1
    return SimResponse.json(restored)


def _restore_check(sim: Simulator, qrcodes: list, ways: list, groups: list, menus: dict) -> None:
    def texts(item: Any, *names: str) -> bool:
        return isinstance(item, dict) and all(isinstance(item.get(name), str) and item.get(name) for name in names)

    def registered(appid: str, kind: str) -> None:
        app = sim.state.apps.get(appid)
        if app is None or app.kind != kind:
            raise SimError(40013, f"invalid {'corpid' if kind == 'work' else 'appid'} {appid}", status=400)

    with sim.lock:
        for item in qrcodes:
            if not texts(item, "appid", "ticket", "scene"):
                raise SimError(40097, "each QR code needs appid, ticket and scene", status=400)
            expires_at = item.get("expires_at")
            if not item.get("permanent") and (isinstance(expires_at, bool) or not isinstance(expires_at, int | float)):
                raise SimError(40097, "a temporary QR code needs expires_at (Unix seconds)", status=400)
            registered(item["appid"], "official")
        for item in ways:
            if not texts(item, "corpid", "config_id") or not isinstance(item.get("users"), list) or not item["users"]:
                raise SimError(40097, "each contact way needs corpid, config_id and users", status=400)
            registered(item["corpid"], "work")
        for item in groups:
            if not texts(item, "corpid", "chat_id", "owner"):
                raise SimError(40097, "each group needs corpid, chat_id and owner", status=400)
            registered(item["corpid"], "work")
        for appid, menu in menus.items():
            registered(appid, "official")
            try:
                mp._check_menu(menu)
            except SimError as error:
                raise SimError(error.errcode, error.errmsg, status=400) from None
