"""Property-based tests of identity resolution and merge/un-merge (SPEC T4, issue 2 §6) on the real database.

A hypothesis state machine drives random observation batches (every identity kind, namespaces, repeats in a
batch), explicit links and merges, un-merges in any order, tags, consents and profile fields through the real
services, and after every step checks the database against a tiny pure-Python reference of the documented
rules (union-find style ownership map) and against the invariants: every identity and every event belongs to
exactly one live customer, nothing is lost by a merge, un-merge restores both sides, merge records agree with
customer state. At the end the whole history is replayed into a fresh workspace: same partition.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from siyu.core.errors import SiyuError
from siyu.core.services import workspace_create
from siyu.customers.identity import (
    Observation,
    customer_link,
    customer_merge,
    customer_unmerge,
    identities_resolve,
)
from siyu.customers.models import (
    KIND_RANK,
    STRONG_KINDS,
    WEAK_KINDS,
    ConsentRecord,
    Customer,
    CustomerStatus,
    CustomerTag,
    Event,
    Identity,
    MergeRecord,
    Tag,
    TagGroup,
)

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 1, tzinfo=UTC)
_workspace_numbers = itertools.count()

# Values deliberately collide across kinds and namespaces: the resolver must match on the full key.
VALUES = st.sampled_from(["1", "2", "3"])
KEYS = st.one_of(
    st.tuples(st.just("unionid"), st.just(""), VALUES),
    st.tuples(st.just("phone"), st.just(""), VALUES),
    st.tuples(st.sampled_from(["unionid", "phone"]), st.just(""), VALUES),
    st.tuples(st.just("openid"), st.sampled_from(["wxmp", "wxmini"]), VALUES),
    st.tuples(st.just("external_userid"), st.just("corp1"), VALUES),
    st.tuples(st.just("lead"), st.just("douyin"), VALUES),
    st.tuples(st.just("device"), st.sampled_from(["ios", "android"]), VALUES),
)
OBSERVATION = st.tuples(st.lists(KEYS, min_size=1, max_size=3), st.integers(0, 40))
BATCH = st.tuples(st.lists(OBSERVATION, min_size=1, max_size=4), st.booleans())


def sort_keys(keys):
    return sorted(dict.fromkeys(keys), key=lambda key: KIND_RANK[key[0]])


class Reference:
    """The documented rules on plain dicts. Customers are numbered in creation order (0, 1, ...)."""

    def __init__(self):
        self.owner: dict[tuple, int] = {}
        self.first_seen: list[datetime] = []
        self.merged_into: dict[int, int] = {}
        self.records: list[dict] = []  # in creation order; {"winner", "loser", "keys", "active", "seen"}

    def live(self, customer):
        while customer in self.merged_into:
            customer = self.merged_into[customer]
        return customer

    def age(self, customer):
        return (self.first_seen[customer], customer)

    def identified(self, customer):
        return any(kind not in WEAK_KINDS and who == customer for (kind, _, _), who in self.owner.items())

    def merge(self, winner, loser):
        moved = sorted(key for key, who in self.owner.items() if who == loser)
        for key in moved:
            self.owner[key] = winner
        before = self.first_seen[winner]
        self.first_seen[winner] = min(before, self.first_seen[loser])
        self.merged_into[loser] = winner
        self.records.append({"winner": winner, "loser": loser, "keys": moved, "active": True,
                             "seen": (before, self.first_seen[winner])})

    def unmerge(self, record):
        if self.live(record["winner"]) != record["winner"]:
            return False
        for key in record["keys"]:
            if self.owner.get(key) == record["winner"]:
                self.owner[key] = record["loser"]
        before, after = record["seen"]
        if self.first_seen[record["winner"]] == after:
            self.first_seen[record["winner"]] = before
        del self.merged_into[record["loser"]]
        record["active"] = False
        return True

    def observe(self, batch):
        """Returns, per observation, (customer, key the event is filed under)."""
        chosen = []
        for keys, at in batch:
            keys = sort_keys(keys)
            nonweak = [self.live(self.owner[k]) for k in keys if k in self.owner and k[0] not in WEAK_KINDS]
            weak = [self.live(self.owner[k]) for k in keys if k in self.owner and k[0] in WEAK_KINDS]
            identifying = any(k[0] not in WEAK_KINDS for k in keys)
            if nonweak and any(k[0] in STRONG_KINDS for k in keys):
                candidates = sorted(set(nonweak), key=self.age)
                customer = candidates[0]
                for other in candidates[1:]:
                    self.merge(customer, other)
            elif nonweak:
                customer = nonweak[0]
            elif weak and not identifying:
                customer = weak[0]
            elif anonymous := [who for who in weak if not self.identified(who)]:
                customer = anonymous[0]
            else:
                customer = len(self.first_seen)
                self.first_seen.append(at)
            for key in keys:
                self.owner.setdefault(key, customer)
            chosen.append((customer, keys))
        results = []
        for customer, keys in chosen:
            target = self.live(customer)
            mine = [k for k in keys if self.live(self.owner[k]) == target]
            results.append((target, (mine or keys)[0]))
        return results

    def partition(self):
        groups: dict[int, set] = {}
        for key, who in self.owner.items():
            groups.setdefault(self.live(who), set()).add(key)
        return {frozenset(group) for group in groups.values()}


def partition_of(workspace):
    groups: dict[int, set] = {}
    for kind, namespace, value, customer_id in Identity.objects.filter(workspace=workspace).values_list(
        "kind", "namespace", "value", "customer_id"
    ):
        groups.setdefault(customer_id, set()).add((kind, namespace, value))
    return {frozenset(group) for group in groups.values()}


class World:
    """One workspace driven through the real services, mirrored by the reference."""

    def __init__(self):
        number = next(_workspace_numbers)
        self.workspace = workspace_create(slug=f"prop-{number}", name=f"属性{number}")
        group = TagGroup.objects.create(workspace=self.workspace, name="兴趣")
        self.tags = [Tag.objects.create(workspace=self.workspace, group=group, name=f"t{i}") for i in range(3)]
        self.ref = Reference()
        self.events = itertools.count()
        self.consents = 0

    def pks(self):
        """Reference customer number -> database id (ids grow in creation order)."""
        return list(Customer.objects.filter(workspace=self.workspace).order_by("pk").values_list("pk", flat=True))

    def ref_number(self, pk):
        return self.pks().index(pk)

    def observe(self, batch):
        observations = [Observation(list(keys), BASE + timedelta(minutes=minutes)) for keys, minutes in batch]
        resolutions = identities_resolve(workspace=self.workspace, observations=observations)
        Event.objects.bulk_create([
            Event(workspace=self.workspace, event_id=f"e{next(self.events)}", type="page_view",
                  occurred_at=obs.occurred_at, received_at=obs.occurred_at, identity_id=resolution.identity_id)
            for obs, resolution in zip(observations, resolutions, strict=True)
        ])
        expected = self.ref.observe([(keys, BASE + timedelta(minutes=minutes)) for keys, minutes in batch])
        return resolutions, expected

    def owner_pk(self, key):
        return Identity.objects.get(workspace=self.workspace, kind=key[0], namespace=key[1], value=key[2]).customer_id

    def active_records(self):
        return list(MergeRecord.objects.filter(workspace=self.workspace, unmerged_at__isnull=True).order_by("pk"))

    def link(self, key_a, key_b):
        a, b = self.owner_pk(key_a), self.owner_pk(key_b)
        if a == b:
            return None
        kept = customer_link(workspace=self.workspace, customer_ids=[a, b])
        ra, rb = self.ref.live(self.ref.owner[key_a]), self.ref.live(self.ref.owner[key_b])
        winner, loser = sorted([ra, rb], key=self.ref.age)
        self.ref.merge(winner, loser)
        return kept

    def merge(self, key_a, key_b):
        a, b = self.owner_pk(key_a), self.owner_pk(key_b)
        if a == b:
            return None
        record = customer_merge(workspace=self.workspace, winner_id=a, loser_id=b, reason="explicit")
        self.ref.merge(self.ref.live(self.ref.owner[key_a]), self.ref.live(self.ref.owner[key_b]))
        return record

    def unmerge(self, index):
        record = self.active_records()[index]
        ref_record = [r for r in self.ref.records if r["active"]][index]
        allowed = self.ref.unmerge(ref_record)
        if allowed:
            customer_unmerge(workspace=self.workspace, record_id=record.pk)
        else:
            with pytest.raises(SiyuError) as refused:
                customer_unmerge(workspace=self.workspace, record_id=record.pk)
            assert refused.value.code == "unmerge_order"
        return allowed

    def apply(self, op):
        getattr(self, op[0])(*op[1:])


def snapshot(customer_id):
    customer = Customer.objects.get(pk=customer_id)
    return {
        "identities": set(Identity.objects.filter(customer_id=customer_id).values_list("pk", flat=True)),
        "tags": set(CustomerTag.objects.filter(customer_id=customer_id).values_list("tag_id", flat=True)),
        "consents": set(ConsentRecord.objects.filter(customer_id=customer_id).values_list("pk", flat=True)),
        "fields": (customer.status, customer.merged_into_id, customer.first_seen_at, customer.last_seen_at,
                   customer.phone_hash, customer.name_hash, customer.first_channel, customer.city),
    }


class IdentityMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.world = World()
        self.log: list[tuple] = []

    # -- operations -------------------------------------------------------------------------------------
    @initialize(batch=BATCH)
    def first_batch(self, batch):
        self.observe(batch)

    @rule(batch=BATCH)
    def observe(self, batch):
        observations, repeat = batch
        if repeat:
            observations = [*observations, observations[0]]  # the same observation twice in one batch
        resolutions, expected = self.world.observe(observations)
        self.log.append(("observe", observations))
        pks = self.world.pks()
        for resolution, (customer, key) in zip(resolutions, expected, strict=True):
            assert resolution.customer_id == pks[customer]
            identity = Identity.objects.get(pk=resolution.identity_id)
            assert (identity.kind, identity.namespace, identity.value) == key
            assert identity.customer_id == resolution.customer_id

    def _two_keys(self, data):
        keys = sorted(self.world.ref.owner)
        return data.draw(st.sampled_from(keys)), data.draw(st.sampled_from(keys))

    @precondition(lambda self: self.world.ref.owner)
    @rule(data=st.data())
    def link(self, data):
        if self.world.ref.owner:
            a, b = self._two_keys(data)
            self.world.link(a, b)
            self.log.append(("link", a, b))

    @precondition(lambda self: self.world.ref.owner)
    @rule(data=st.data())
    def merge_keeps_everything_and_unmerge_restores(self, data):
        if not self.world.ref.owner:
            return
        a, b = self._two_keys(data)
        winner, loser = self.world.owner_pk(a), self.world.owner_pk(b)
        if winner == loser:
            return
        before_w, before_l = snapshot(winner), snapshot(loser)
        record = self.world.merge(a, b)
        self.log.append(("merge", a, b))
        merged = snapshot(winner)
        assert merged["identities"] == before_w["identities"] | before_l["identities"]
        assert merged["tags"] == before_w["tags"] | before_l["tags"]
        assert merged["consents"] == before_w["consents"] | before_l["consents"]
        assert snapshot(loser)["tags"] == before_l["tags"]  # tags are copied, the loser keeps its own
        assert Customer.objects.get(pk=loser).merged_into_id == winner
        assert record.moved_identity_ids and set(record.moved_identity_ids) == before_l["identities"]
        if data.draw(st.booleans(), label="undo at once"):
            assert self.world.unmerge(len(self.world.active_records()) - 1)
            self.log.append(("unmerge", len(self.world.active_records())))
            assert snapshot(winner) == before_w
            assert snapshot(loser) == before_l

    @precondition(lambda self: any(record["active"] for record in self.world.ref.records))
    @rule(data=st.data())
    def unmerge_any(self, data):
        records = self.world.active_records()
        if records:
            index = data.draw(st.integers(0, len(records) - 1))
            self.world.unmerge(index)
            self.log.append(("unmerge", index))

    @precondition(lambda self: self.world.ref.owner)
    @rule(data=st.data(), tag=st.integers(0, 2))
    def tag_customer(self, data, tag):
        if self.world.ref.owner:
            customer = self.world.owner_pk(data.draw(st.sampled_from(sorted(self.world.ref.owner))))
            CustomerTag.objects.get_or_create(workspace=self.world.workspace, customer_id=customer,
                                              tag=self.world.tags[tag])

    @precondition(lambda self: self.world.ref.owner)
    @rule(data=st.data(), granted=st.booleans())
    def record_consent(self, data, granted):
        if self.world.ref.owner:
            customer = self.world.owner_pk(data.draw(st.sampled_from(sorted(self.world.ref.owner))))
            ConsentRecord.objects.create(workspace=self.world.workspace, customer_id=customer,
                                         purpose="marketing", granted=granted, recorded_at=BASE)
            self.world.consents += 1

    @precondition(lambda self: self.world.ref.owner)
    @rule(data=st.data(), phone=st.sampled_from(["", "hash-a", "hash-b"]), city=st.sampled_from(["", "上海"]))
    def set_profile(self, data, phone, city):
        if self.world.ref.owner:
            customer = self.world.owner_pk(data.draw(st.sampled_from(sorted(self.world.ref.owner))))
            Customer.objects.filter(pk=customer).update(phone_hash=phone, city=city)

    # -- invariants -------------------------------------------------------------------------------------
    @invariant()
    def ownership_matches_reference(self):
        pks = self.world.pks()
        assert len(pks) == len(self.world.ref.first_seen)
        stored = {
            (kind, namespace, value): customer_id
            for kind, namespace, value, customer_id in Identity.objects.filter(
                workspace=self.world.workspace).values_list("kind", "namespace", "value", "customer_id")
        }
        assert stored == {key: pks[who] for key, who in self.world.ref.owner.items()}
        status = dict(Customer.objects.filter(workspace=self.world.workspace).values_list("pk", "status"))
        for number, pk in enumerate(pks):
            live = self.world.ref.live(number) == number
            assert status[pk] == (CustomerStatus.ACTIVE if live else CustomerStatus.MERGED)
        first_seen = dict(Customer.objects.filter(workspace=self.world.workspace)
                          .values_list("pk", "first_seen_at"))
        assert [first_seen[pk] for pk in pks] == self.world.ref.first_seen

    @invariant()
    def every_identity_and_event_belongs_to_one_live_customer(self):
        live = set(Customer.objects.filter(workspace=self.world.workspace, status=CustomerStatus.ACTIVE)
                   .values_list("pk", flat=True))
        owner = dict(Identity.objects.filter(workspace=self.world.workspace).values_list("pk", "customer_id"))
        assert set(owner.values()) <= live
        events = list(Event.objects.filter(workspace=self.world.workspace).values_list("identity_id", flat=True))
        assert all(identity in owner for identity in events)
        assert all(owner[identity] in live for identity in events)

    @invariant()
    def merges_lose_nothing(self):
        workspace = self.world.workspace
        customers = {row.pk: row for row in Customer.objects.filter(workspace=workspace)}
        tags: dict[int, set] = {}
        for customer_id, tag_id in CustomerTag.objects.filter(workspace=workspace).values_list("customer_id",
                                                                                              "tag_id"):
            tags.setdefault(customer_id, set()).add(tag_id)
        active = self.world.active_records()
        losers = [record.loser_id for record in active]
        assert len(losers) == len(set(losers))
        for record in active:
            winner, loser = customers[record.winner_id], customers[record.loser_id]
            assert loser.status == CustomerStatus.MERGED and loser.merged_into_id == winner.pk
            assert tags.get(loser.pk, set()) <= tags.get(winner.pk, set())  # the union is on the winner
        for customer in customers.values():
            assert (customer.status == CustomerStatus.MERGED) == (customer.pk in losers)
            if customer.status == CustomerStatus.ACTIVE:
                assert customer.merged_into_id is None
        consents = ConsentRecord.objects.filter(workspace=workspace)
        assert consents.count() == self.world.consents
        assert all(customers[c].is_live for c in consents.values_list("customer_id", flat=True))

    def teardown(self):
        # Determinism: the same history in a fresh workspace gives the same partition of identities.
        replay = World()
        for op in self.log:
            replay.apply(op)
        assert partition_of(replay.workspace) == partition_of(self.world.workspace) == self.world.ref.partition()


def test_identity_resolution_and_merges_keep_their_invariants():
    run_state_machine_as_test(
        IdentityMachine,
        # Modest by default so the suite stays fast; SIYU_IDENTITY_EXAMPLES=500 for a deep run.
        settings=settings(max_examples=int(os.environ.get("SIYU_IDENTITY_EXAMPLES", "15")), stateful_step_count=12,
                          deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )


def test_unmerge_out_of_order_keeps_tags_other_merges_brought(workspace):
    """W absorbs A then B, both tagged T: undoing A first must leave T on W (B still brings it)."""
    make = lambda value, minutes: identities_resolve(  # noqa: E731
        workspace=workspace,
        observations=[Observation([("openid", "wxmp", value)], BASE + timedelta(minutes=minutes))])[0].customer_id
    w, a, b = make("w", 0), make("a", 1), make("b", 2)
    group = TagGroup.objects.create(workspace=workspace, name="组")
    tag = Tag.objects.create(workspace=workspace, group=group, name="T")
    for customer in (a, b):
        CustomerTag.objects.create(workspace=workspace, customer_id=customer, tag=tag)
    first = customer_merge(workspace=workspace, winner_id=w, loser_id=a, reason="explicit")
    second = customer_merge(workspace=workspace, winner_id=w, loser_id=b, reason="explicit")
    customer_unmerge(workspace=workspace, record_id=first.pk)
    assert CustomerTag.objects.filter(customer_id=w, tag=tag).exists()
    customer_unmerge(workspace=workspace, record_id=second.pk)
    assert not CustomerTag.objects.filter(customer_id=w, tag=tag).exists()
    assert CustomerTag.objects.filter(customer_id=a, tag=tag).exists()
    assert CustomerTag.objects.filter(customer_id=b, tag=tag).exists()


def test_unmerge_restores_winner_profile(workspace):
    """Merging an older profile into a younger one fills the younger's phone and first arrival from it;
    un-merge must take both back (the phone is personal data of the other person)."""
    obs = [Observation([("openid", "wxmp", v)], BASE + timedelta(minutes=i)) for i, v in enumerate("oy")]
    older, younger = (r.customer_id for r in identities_resolve(workspace=workspace, observations=obs))
    Customer.objects.filter(pk=older).update(phone_hash="h-older", city="杭州", first_channel="wx_mp")
    record = customer_merge(workspace=workspace, winner_id=younger, loser_id=older, reason="explicit")
    merged = Customer.objects.get(pk=younger)
    assert (merged.first_seen_at, merged.phone_hash, merged.city) == (BASE, "h-older", "杭州")
    customer_unmerge(workspace=workspace, record_id=record.pk)
    restored = Customer.objects.get(pk=younger)
    assert (restored.first_seen_at, restored.phone_hash, restored.city, restored.first_channel) == (
        BASE + timedelta(minutes=1), "", "", "")
    assert Customer.objects.get(pk=older).phone_hash == "h-older"


@pytest.mark.parametrize("keys, code", [
    ([], "identity_missing"),
    ([("email", "", "x")], "identity_kind_invalid"),
    ([("openid", "wxmp", "")], "identity_value_invalid"),
    ([("openid", "wxmp", "x" * 129)], "identity_value_invalid"),
    ([("openid", "n" * 65, "x")], "identity_namespace_invalid"),
])
def test_bad_keys_are_refused_and_change_nothing(workspace, keys, code):
    good = Observation([("openid", "wxmp", "fine")], BASE)
    with pytest.raises(SiyuError) as refused:
        identities_resolve(workspace=workspace, observations=[good, Observation(keys, BASE)])
    assert refused.value.code == code
    assert not Identity.objects.filter(workspace=workspace).exists()
    assert not Customer.objects.filter(workspace=workspace).exists()


def test_unmerge_of_a_merge_decided_inside_a_batch(workspace):
    """Found by the state machine: a customer created and merged away in the same batch comes back whole."""
    at = lambda minutes: BASE + timedelta(minutes=minutes)  # noqa: E731
    u1, u3, lead = ("unionid", "", "1"), ("unionid", "", "3"), ("lead", "douyin", "2")
    identities_resolve(workspace=workspace, observations=[
        Observation([u3], at(31)), Observation([u1], at(0)), Observation([lead, u1], at(33)),
        Observation([u1, u3, u1], at(0)),
    ])
    record = MergeRecord.objects.get(workspace=workspace)
    u3_identity = Identity.objects.get(workspace=workspace, kind="unionid", value="3")
    assert record.moved_identity_ids == [u3_identity.pk]
    assert u3_identity.customer_id == record.winner_id
    customer_unmerge(workspace=workspace, record_id=record.pk)
    assert Identity.objects.get(pk=u3_identity.pk).customer_id == record.loser_id
