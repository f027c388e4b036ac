"""A simulated brand as pure numpy arrays (no ORM): who arrives from which channel, what they do and buy.

The stochastic story, so that later models can be checked against the truth:
- Arrivals: uniform over the horizon; the channel of each arrival is drawn from ``CHANNEL_WEIGHTS`` (seed
  003's matrix, 小红书 8,000 / 抖音 5,000 / 公众号 2,000 / 门店 3,000 / 老客推荐 4,000 a month, plus small
  shares for the other SPEC T1 touchpoints).
- Purchases (BG/NBD): from arrival on, customer i buys as a Poisson process of rate λ_i ~ Gamma(r, α) per
  day; after each purchase they drop out with probability p_i ~ Beta(a, b). Their purchase count over the
  observation window T_i is x_i = min(K_i, N_i), K_i ~ Geometric(p_i), N_i ~ Poisson(λ_i T_i), alive iff K_i > N_i.
  Purchase times are the first x_i order statistics of N_i uniforms on [0, T_i] (drawn with exponential spacings).
- Spend (Gamma-Gamma): ν_i ~ Gamma(q, rate γ), each order's amount z ~ Gamma(p, rate ν_i) in fen.
- Browsing and interactions: independent Poisson processes per event type, rate = base rate × the customer's
  activity level (Gamma, mean 1) × a per-type taste (Gamma, mean 1), while the customer is active
  (until 30 days after dropping out, or the end of the horizon).

Every draw comes from one ``numpy.random.Generator(PCG64(seed))`` per chunk (seeded by (seed, chunk)), so a
seed gives identical data whatever the chunk is written to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

DAY_US = 86_400 * 1_000_000

# Seed 003's channel matrix (people per month) plus small shares for the rest of SPEC T1.
CHANNEL_WEIGHTS: dict[str, int] = {
    "xiaohongshu": 8000,
    "douyin": 5000,
    "official_account": 2000,
    "store": 3000,
    "referral": 4000,
    "mini_program": 600,
    "channels": 600,
    "community": 500,
    "wecom": 500,
    "ecommerce": 400,
    "search": 300,
    "event": 300,
    "partner": 200,
}
CHANNEL_CODES: tuple[str, ...] = tuple(CHANNEL_WEIGHTS)
CHANNEL_INDEX = {code: i for i, code in enumerate(CHANNEL_CODES)}

# The event that marks an arrival through each channel (with its scene / platform property).
ARRIVAL_EVENT = {
    "xiaohongshu": "lead_submit", "douyin": "lead_submit", "official_account": "subscribe",
    "store": "qr_scan", "referral": "qr_scan", "mini_program": "mini_program_open", "channels": "subscribe",
    "community": "group_join", "wecom": "wecom_add", "ecommerce": "qr_scan", "search": "link_click",
    "event": "qr_scan", "partner": "qr_scan",
}

# Identity slots a customer may hold; events prefer a slot and fall back to the primary identity.
SLOTS = ("unionid", "oa_openid", "mp_openid", "external_userid", "phone", "device", "lead")
SLOT_KIND = {"unionid": "unionid", "oa_openid": "openid", "mp_openid": "openid",
             "external_userid": "external_userid", "phone": "phone", "device": "device", "lead": "lead"}

# Browsing and interactions: (type, base rate per day, preferred identity slot, channel of the touch).
ACTIVITY_TYPES: tuple[tuple[str, float, str, str], ...] = (
    ("page_view", 0.050, "mp_openid", "mini_program"),
    ("product_view", 0.040, "mp_openid", "mini_program"),
    ("add_to_cart", 0.010, "mp_openid", "mini_program"),
    ("mini_program_open", 0.020, "mp_openid", "mini_program"),
    ("article_read", 0.020, "oa_openid", "official_account"),
    ("message_in", 0.010, "external_userid", "wecom"),
    ("share", 0.005, "mp_openid", "mini_program"),
    ("check_in", 0.010, "mp_openid", "mini_program"),
    ("link_click", 0.005, "unionid", ""),
    ("coupon_claim", 0.004, "mp_openid", "mini_program"),
    ("group_message", 0.008, "unionid", "community"),
)
ACTIVITY_BASE_TOTAL = sum(rate for _, rate, _, _ in ACTIVITY_TYPES)

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
GIVEN_CHARS = list("雅静丽娜敏婷雪琳欣怡晓佳梦颖思涵子萱诗若一可心悦嘉慧芳玉兰秀英华明伟强磊洋勇军杰涛浩宇")
CITIES = ["上海", "北京", "杭州", "深圳", "广州", "成都", "南京", "武汉", "苏州", "西安", "重庆", "长沙", "天津", "厦门"]
CITY_WEIGHTS = np.array([14, 12, 9, 9, 8, 8, 6, 6, 6, 5, 5, 4, 4, 4], dtype=float)
INTEREST_TAGS = ("护肤", "彩妆", "香水", "美发", "身体护理")


@dataclass(frozen=True)
class BrandParameters:
    """The true parameters of the simulated brand (written to the truth file)."""

    customers: int
    months: int
    seed: int
    end_us: int  # end of the horizon, µs since epoch (UTC)
    # BG/NBD, time unit = day
    r: float = 0.55
    alpha: float = 20.0
    a: float = 0.8
    b: float = 3.2
    # Gamma-Gamma spend per order, fen
    gg_p: float = 6.0
    gg_q: float = 4.0
    gg_gamma: float = 4500.0
    activity_shape: float = 1.5
    events_per_customer: float = 20.0  # target average of all events per customer over the horizon
    chunk_size: int = 50_000
    channel_weights: dict[str, int] = field(default_factory=lambda: dict(CHANNEL_WEIGHTS))

    @property
    def horizon_days(self) -> float:
        return self.months * 30.0

    @property
    def start_us(self) -> int:
        return self.end_us - int(self.horizon_days * DAY_US)

    def activity_scale(self) -> float:
        """Multiplier of the base activity rates so the average customer has ~``events_per_customer`` events.

        An average customer is observed for half the horizon; purchases and arrival events come on top.
        """
        expected_purchases = self.r / self.alpha * self.horizon_days / 2 * 0.6
        other = max(1.0, self.events_per_customer - 1.5 - expected_purchases)
        return other / (ACTIVITY_BASE_TOTAL * self.horizon_days / 2 * 0.78)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(horizon_days=self.horizon_days, start_us=self.start_us,
                    expected_rate_per_day=self.r / self.alpha, expected_dropout=self.a / (self.a + self.b),
                    expected_order_fen=self.gg_p * self.gg_gamma / (self.gg_q - 1))
        return data


@dataclass
class Chunk:
    """Customers ``offset .. offset+n-1`` of the brand and everything they did, as column arrays."""

    offset: int
    n: int
    # customers
    channel: np.ndarray  # int index into CHANNEL_CODES
    first_us: np.ndarray
    last_us: np.ndarray
    gender: np.ndarray  # 0 female, 1 male, 2 unknown
    city: np.ndarray
    name: list[str]
    phone: list[str | None]
    # truth
    lam: np.ndarray
    p: np.ndarray
    nu: np.ndarray
    alive: np.ndarray
    purchases: np.ndarray
    # identities: one row per (customer, slot)
    ident_customer: np.ndarray  # local customer index
    ident_slot: np.ndarray  # index into SLOTS
    ident_namespace: list[str]
    ident_value: list[str | None]  # None for phone: the writer fills in the keyed hash
    # events
    ev_customer: np.ndarray
    ev_slot: np.ndarray  # preferred slot; resolved to an identity by the writer through ``slot_row``
    ev_type: np.ndarray  # index into event_types
    ev_us: np.ndarray
    ev_channel: np.ndarray  # index into CHANNEL_CODES, -1 for none
    ev_amount: np.ndarray  # fen for orders, else 0
    ev_seq: np.ndarray  # sequence of the event within its customer (for a stable event_id)
    # slot_row[i, s] = row of customer i's identity in slot s among the chunk's identities, or -1
    slot_row: np.ndarray
    marketing_consent: np.ndarray
    interests: np.ndarray  # (n, len(INTEREST_TAGS)) bool
    event_types: tuple[str, ...] = ()

    @property
    def events(self) -> int:
        return int(self.ev_us.size)


EVENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(["order_paid", "review", *ARRIVAL_EVENT.values(), "wecom_add", *(t for t, *_ in ACTIVITY_TYPES)])
)
EVENT_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}


def app_ids(seed: int) -> dict[str, str]:
    """Fake but well-formed AppIDs / CorpID for the brand's accounts (namespaces of openid/external_userid)."""
    digest = hashlib.sha256(f"siyu-sim-{seed}".encode()).hexdigest()
    return {"oa_openid": "wx" + digest[:16], "mp_openid": "wx" + digest[16:32], "external_userid": "ww" + digest[32:48]}


def _hex_tokens(rng: np.random.Generator, n: int) -> list[str]:
    """n random 24-hex-digit tokens (96 bits) as strings."""
    hi = rng.integers(0, 2**63, size=n, dtype=np.int64)
    lo = rng.integers(0, 2**32, size=n, dtype=np.int64)
    return [f"{high:016x}{low:08x}" for high, low in zip(hi.tolist(), lo.tolist(), strict=True)]


def _segment_ranks(counts: np.ndarray) -> np.ndarray:
    """For repeated segments of the given lengths, the position of each element inside its segment."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def chunk_generate(params: BrandParameters, chunk_index: int) -> Chunk:
    offset = chunk_index * params.chunk_size
    n = min(params.chunk_size, params.customers - offset)
    rng = np.random.Generator(np.random.PCG64([params.seed, chunk_index]))
    horizon_us = int(params.horizon_days * DAY_US)

    weights = np.array([params.channel_weights[c] for c in CHANNEL_CODES], dtype=float)
    channel = rng.choice(len(CHANNEL_CODES), size=n, p=weights / weights.sum())
    first_us = params.start_us + rng.integers(0, horizon_us, size=n, dtype=np.int64)
    t_days = (params.end_us - first_us) / DAY_US

    # BG/NBD purchases
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n)
    p = rng.beta(params.a, params.b, size=n)
    k_drop = rng.geometric(np.clip(p, 1e-9, 1.0))
    n_pois = rng.poisson(lam * t_days)
    purchases = np.minimum(k_drop, n_pois)
    alive = k_drop > n_pois
    # first x of N sorted uniforms on [0, T]: cumulated exponential spacings over (their sum + Gamma(N + 1 - x))
    spacing = rng.exponential(1.0, size=int(purchases.sum()))
    owner = np.repeat(np.arange(n), purchases)
    seg_cum = np.cumsum(spacing)
    seg_start = np.repeat(np.concatenate(([0.0], seg_cum))[np.cumsum(purchases) - purchases], purchases)
    within = seg_cum - seg_start
    seg_total = np.zeros(n)
    np.add.at(seg_total, owner, spacing)
    rest = rng.gamma(np.maximum(n_pois + 1 - purchases, 1).astype(float))
    frac = within / (seg_total + rest)[owner]
    buy_us = first_us[owner] + (frac * t_days[owner] * DAY_US).astype(np.int64) + 1
    # active until 30 days after the last purchase for those who dropped out
    last_buy_frac = np.zeros(n)
    np.maximum.at(last_buy_frac, owner, frac)
    active_days = np.where(alive, t_days, np.minimum(t_days, last_buy_frac * t_days + 30.0))

    # Gamma-Gamma spend
    nu = rng.gamma(params.gg_q, 1.0 / params.gg_gamma, size=n)
    amount = np.maximum(100, np.rint(rng.gamma(params.gg_p, 1.0 / nu[owner]))).astype(np.int64)

    # Browsing and interactions
    activity = rng.gamma(params.activity_shape, 1.0 / params.activity_shape, size=n)
    scale = params.activity_scale()
    base = np.array([rate for _, rate, _, _ in ACTIVITY_TYPES]) * scale
    taste = rng.gamma(2.0, 0.5, size=(n, len(ACTIVITY_TYPES)))
    community = (rng.random(n) < 0.25) | (channel == CHANNEL_INDEX["community"])
    rates = activity[:, None] * taste * base[None, :]
    group_col = [t for t, *_ in ACTIVITY_TYPES].index("group_message")
    rates[:, group_col] *= community
    counts = rng.poisson(rates * active_days[:, None])
    act_owner = np.repeat(np.repeat(np.arange(n), len(ACTIVITY_TYPES)), counts.ravel())
    act_kind = np.repeat(np.tile(np.arange(len(ACTIVITY_TYPES)), n), counts.ravel())
    act_us = first_us[act_owner] + (rng.random(act_owner.size) * active_days[act_owner] * DAY_US).astype(np.int64) + 2

    # Reviews after some orders, a few hours later
    review = rng.random(owner.size) < 0.15
    review_us = buy_us[review] + rng.integers(3600, 5 * 86400, size=int(review.sum())) * 1_000_000
    keep_review = review_us < params.end_us
    review_owner = owner[review][keep_review]
    review_us = review_us[keep_review]

    # Identities
    is_lead_channel = np.isin(channel, [CHANNEL_INDEX["xiaohongshu"], CHANNEL_INDEX["douyin"]])
    has = {
        "unionid": rng.random(n) < 0.9,
        "oa_openid": (rng.random(n) < 0.55) | np.isin(channel, [CHANNEL_INDEX["official_account"],
                                                               CHANNEL_INDEX["channels"]]),
        "mp_openid": (rng.random(n) < 0.6) | (purchases > 0) | (channel == CHANNEL_INDEX["mini_program"]),
        "external_userid": (rng.random(n) < np.where(is_lead_channel | np.isin(
            channel, [CHANNEL_INDEX["store"], CHANNEL_INDEX["referral"]]), 0.8, 0.4))
        | (channel == CHANNEL_INDEX["wecom"]),
        "phone": rng.random(n) < np.where(purchases > 0, 0.6, 0.3),
        "device": rng.random(n) < 0.3,
        "lead": is_lead_channel,
    }
    slot_has = np.stack([has[s] for s in SLOTS], axis=1)
    slot_has[~slot_has.any(axis=1), SLOTS.index("mp_openid")] = True  # nobody without an identity
    slot_row = np.full((n, len(SLOTS)), -1, dtype=np.int64)
    flat = slot_has.ravel()
    slot_row.ravel()[flat] = np.arange(int(flat.sum()))
    ident_customer, ident_slot = np.nonzero(slot_has)
    ids = app_ids(params.seed)
    tokens = _hex_tokens(rng, ident_customer.size)
    device_os = rng.random(ident_customer.size) < 0.55
    ident_namespace: list[str] = []
    ident_value: list[str | None] = []
    channel_list = channel.tolist()
    for row, (cust, slot) in enumerate(zip(ident_customer.tolist(), ident_slot.tolist(), strict=True)):
        name = SLOTS[slot]
        token = tokens[row]
        if name == "unionid":
            ident_namespace.append("")
            ident_value.append("oU" + token + "sim")
        elif name in ("oa_openid", "mp_openid"):
            ident_namespace.append(ids[name])
            ident_value.append("o" + token[:4] + token + "x")
        elif name == "external_userid":
            ident_namespace.append(ids[name])
            ident_value.append("wm" + token + "ext")
        elif name == "phone":
            ident_namespace.append("")
            ident_value.append(None)
        elif name == "device":
            ident_namespace.append("ios" if device_os[row] else "android")
            ident_value.append(f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:24]}{token[:8]}")
        else:
            platform = CHANNEL_CODES[channel_list[cust]]
            ident_namespace.append(platform)
            ident_value.append(("xhs" if platform == "xiaohongshu" else "dy") + str(int(token[:15], 16)))

    # People
    gender = rng.choice(3, size=n, p=[0.78, 0.2, 0.02])
    city = rng.choice(len(CITIES), size=n, p=CITY_WEIGHTS / CITY_WEIGHTS.sum())
    surname = rng.integers(0, len(SURNAMES), size=n)
    given_len = rng.integers(1, 3, size=n)
    given = rng.integers(0, len(GIVEN_CHARS), size=(n, 2))
    name = [SURNAMES[s] + "".join(GIVEN_CHARS[g] for g in gs[:gl])
            for s, gs, gl in zip(surname.tolist(), given.tolist(), given_len.tolist(), strict=True)]
    # phone numbers unique within a run: a bijection of the customer index onto prefix × 8 digits
    prefix_table = np.array([130, 131, 132, 135, 136, 137, 138, 139, 150, 151, 152, 155, 158, 159, 166,
                             177, 180, 183, 186, 187, 188, 189, 199])
    index = np.arange(offset, offset + n, dtype=np.int64)
    prefixes = prefix_table[index % prefix_table.size]
    suffix = ((index // prefix_table.size) * 48_271 + params.seed * 7_919) % 100_000_000
    phone_has = slot_has[:, SLOTS.index("phone")]
    phone = [f"{pre}{suf:08d}" if h else None
             for pre, suf, h in zip(prefixes.tolist(), suffix.tolist(), phone_has.tolist(), strict=True)]
    marketing_consent = rng.random(n) < 0.7
    interests = rng.random((n, len(INTEREST_TAGS))) < np.array([0.5, 0.35, 0.15, 0.1, 0.1])

    # Arrival events (plus a WeCom add for lead/store/referral customers with an external_userid)
    arr_type = np.array([EVENT_INDEX[ARRIVAL_EVENT[c]] for c in CHANNEL_CODES])[channel]
    arrival_slot = np.where(is_lead_channel, SLOTS.index("lead"), SLOTS.index("unionid"))
    add_after = slot_has[:, SLOTS.index("external_userid")] & (channel != CHANNEL_INDEX["wecom"]) & (
        rng.random(n) < 0.7)
    add_us = first_us[add_after] + rng.integers(60, 3 * 3600, size=int(add_after.sum())) * 1_000_000
    add_owner = np.nonzero(add_after)[0]
    ok = add_us < params.end_us
    add_owner, add_us = add_owner[ok], add_us[ok]

    act_slot = np.array([SLOTS.index(s) for _, _, s, _ in ACTIVITY_TYPES])[act_kind]
    act_type = np.array([EVENT_INDEX[t] for t, *_ in ACTIVITY_TYPES])[act_kind]
    act_channel = np.array([CHANNEL_INDEX.get(c, -1) for *_, c in ACTIVITY_TYPES])[act_kind]

    ev_customer = np.concatenate([np.arange(n), add_owner, owner, review_owner, act_owner])
    ev_slot = np.concatenate([arrival_slot, np.full(add_owner.size, SLOTS.index("external_userid")),
                              np.full(owner.size, SLOTS.index("mp_openid")),
                              np.full(review_owner.size, SLOTS.index("mp_openid")), act_slot])
    ev_type = np.concatenate([arr_type, np.full(add_owner.size, EVENT_INDEX["wecom_add"]),
                              np.full(owner.size, EVENT_INDEX["order_paid"]),
                              np.full(review_owner.size, EVENT_INDEX["review"]), act_type])
    ev_us = np.concatenate([first_us, add_us, buy_us, review_us, act_us])
    ev_channel = np.concatenate([channel, channel[add_owner], np.full(owner.size, CHANNEL_INDEX["mini_program"]),
                                 np.full(review_owner.size, CHANNEL_INDEX["mini_program"]), act_channel])
    ev_amount = np.concatenate([np.zeros(n + add_owner.size, dtype=np.int64), amount,
                                np.zeros(review_owner.size + act_owner.size, dtype=np.int64)])
    ev_us = np.minimum(ev_us, params.end_us - 1)
    order = np.lexsort((ev_us, ev_customer))
    ev_customer, ev_slot, ev_type, ev_us, ev_channel, ev_amount = (
        ev_customer[order], ev_slot[order], ev_type[order], ev_us[order], ev_channel[order], ev_amount[order])
    ev_seq = _segment_ranks(np.bincount(ev_customer, minlength=n))
    last_us = np.maximum.reduceat(ev_us, np.searchsorted(ev_customer, np.arange(n))) if n else ev_us

    return Chunk(
        offset=offset, n=n, channel=channel, first_us=first_us, last_us=last_us, gender=gender, city=city,
        name=name, phone=phone, lam=lam, p=p, nu=nu, alive=alive, purchases=purchases,
        ident_customer=ident_customer, ident_slot=ident_slot, ident_namespace=ident_namespace,
        ident_value=ident_value, ev_customer=ev_customer, ev_slot=ev_slot, ev_type=ev_type, ev_us=ev_us,
        ev_channel=ev_channel, ev_amount=ev_amount, ev_seq=ev_seq, slot_row=slot_row,
        marketing_consent=marketing_consent, interests=interests, event_types=EVENT_TYPES,
    )


def chunk_count(params: BrandParameters) -> int:
    return -(-params.customers // params.chunk_size)


def chunks_generate(params: BrandParameters) -> Iterator[Chunk]:
    for index in range(chunk_count(params)):
        yield chunk_generate(params, index)


def event_identity_rows(chunk: Chunk) -> np.ndarray:
    """Row (among the chunk's identities) each event is attributed to: its preferred slot, else the primary."""
    preferred = chunk.slot_row[chunk.ev_customer, chunk.ev_slot]
    # primary = the first identity the customer has, in SLOTS order (unionid first)
    has = chunk.slot_row >= 0
    primary = chunk.slot_row[np.arange(chunk.n), np.argmax(has, axis=1)]
    return np.where(preferred >= 0, preferred, primary[chunk.ev_customer])
