"""One interest model per application: workers' learners and the owner, without Kafka.

Several :class:`Learner` objects stand for several workers; the messages they return are what
they would send on the learning topic, delivered here in a chosen order to :class:`ModelOwner`.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

from stream.core.clustering import OnlineClusterer, encode_array
from stream.core.keywords import ClusterTerms
from stream.core.learning import Learner, Sample
from stream.core.model_owner import ModelOwner, deliver, generic_clusters, run_locally
from stream.core.shared_model import (
    ForgetRef,
    ModelFormatError,
    ModelView,
    covered_positions,
    decode_snapshot,
    encode_snapshot,
)

ENC = "enc@1"
AXES = np.eye(4, 8, dtype=np.float32)


def sample(source: str, offset: int, axis: int, user: str = "u", tokens: tuple[str, ...] = (), seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed * 100_003 + offset)
    x = AXES[axis] + 0.05 * rng.standard_normal(8).astype(np.float32)
    return Sample(source, offset, offset, (x / np.linalg.norm(x)).astype(np.float32), tokens or (f"w{axis}",),
                  text=f"text {axis} {offset % 5}", user=user)


def owner(k: int = 4, warmup: int = 40, **kw) -> ModelOwner:
    return ModelOwner(OnlineClusterer(k=k, warmup=warmup, seed=0), encoder_version=ENC, **kw)


def sent(learner: Learner, samples: list[Sample]) -> list[dict]:
    """One batch whose messages reached the broker (the shell confirms after delivery)."""
    step = learner.step(samples)
    learner.confirm(step.covers)
    return step.messages


def warmed(**kw) -> tuple[ModelOwner, Learner]:
    """An owner fitted on one worker's 20 warm-up texts of r/0 (offsets 0..19, learning record 0), and that worker."""
    o = owner(warmup=20, **kw)
    a = Learner(ENC)
    for position, m in enumerate(sent(a, stream("r/0", 0, 20))):
        o.receive(m, position=position)
    o.fit_if_due(0.0)
    a.use(o.publish())
    return o, a


def stream(source: str, start: int, n: int, seed: int = 0) -> list[Sample]:
    return [sample(source, start + i, i % 4, user=f"u{i % 6}", seed=seed) for i in range(n)]


def test_workers_warm_start_one_model_from_all_their_samples_and_then_assign_alike() -> None:
    o = owner()
    a, b = Learner(ENC), Learner(ENC)
    messages = [*sent(a, stream("r/0", 0, 20)), *sent(b, stream("r/1", 0, 20))]
    assert all(m["type"] == "warmup" for m in messages)
    for position, m in enumerate(messages):
        o.receive(m, position=position)
    assert o.fit_if_due(0.0), "40 samples from two workers fill the warm-up buffer"
    view = o.publish()
    assert view.seen == 40 and view.merged == {"r/0": 19, "r/1": 19}
    for learner in (a, b):
        assert learner.use(view)
    probe = np.stack([s.embedding for s in stream("probe/0", 0, 12, seed=5)])
    np.testing.assert_array_equal(a.view.assign(probe)[0], b.view.assign(probe)[0])
    released = a.step([])
    assert len(released.assigned) == 20 and released.messages == [], "held texts are assigned, never sent twice"


def test_every_text_is_learned_once_whatever_the_order_and_redelivery() -> None:
    o, a = warmed()
    batch = stream("r/0", 20, 30)
    first = sent(a, batch)
    again = sent(a, batch)  # a redelivered batch: assigned, not sent again
    assert first and not again
    o.receive(first[0], position=10)
    o.receive(first[0], position=11)  # the same message twice (a producer retry, a restarted sender)
    o.receive(first[0], position=10)  # and a record the owner had read already
    assert o.clusterer.seen == 50
    assert o.counts["duplicate"] == 2


def test_a_second_worker_taking_over_a_partition_does_not_resend_what_the_model_covers() -> None:
    o, a = warmed()
    for m in sent(a, stream("r/0", 20, 10)):
        o.receive(m)
    view = o.publish()
    b = Learner(ENC)  # takes over r/0 from its committed offset 15
    b.use(view)
    resent = sent(b, stream("r/0", 15, 20))
    assert [(p["first"], p["last"]) for p in resent[0]["parts"]] == [(30, 34)]
    for m in [*resent, *sent(b, stream("r/0", 35, 5))]:
        o.receive(m)
    assert o.clusterer.seen == 40 and o.counts["overlap"] == 0


def test_an_overlapping_part_is_dropped_and_counted_not_merged_twice() -> None:
    o, a = warmed()
    zombie = Learner(ENC)
    zombie.use(a.view)
    for m in sent(a, stream("r/0", 20, 10)):
        o.receive(m)
    for m in sent(zombie, stream("r/0", 25, 10)):  # 25..34 overlaps 20..29
        o.receive(m)
    assert o.counts["overlap"] == 1 and o.clusterer.seen == 30


def test_a_forced_fit_waits_for_k_samples_and_the_deadline() -> None:
    o = owner(k=4, warmup=100, warmup_max_wait=30.0)
    a = Learner(ENC)
    for m in sent(a, stream("r/0", 0, 3)):
        o.receive(m, now=0.0)
    assert not o.fit_if_due(31.0), "fewer than k samples never fit"
    for m in sent(a, stream("r/0", 3, 3)):
        o.receive(m, now=31.0)
    assert not o.fit_if_due(29.0)
    assert o.fit_if_due(30.0)


def test_the_owner_continues_exactly_from_its_snapshot_after_a_failover() -> None:
    o, a = warmed(topics=2)
    msgs = [m for i in range(4) for m in sent(a, stream("r/0", 20 + 10 * i, 10))]
    o.receive(msgs[0], position=1)
    o.receive(msgs[1], position=2)
    view = o.publish()
    record = encode_snapshot(o.snapshot(view))
    successor = ModelOwner.restore(decode_snapshot(record))
    assert ModelView.from_snapshot(decode_snapshot(record)).version == view.version
    # the successor re-reads from the last committed offset: position 2 again, then new records
    for position, m in [(2, msgs[1]), (3, msgs[2]), (4, msgs[3])]:
        successor.receive(m, position=position)
        if position > 2:
            o.receive(m, position=position)
    np.testing.assert_array_equal(successor.clusterer.centers, o.clusterer.centers)
    assert successor.clusterer.seen == o.clusterer.seen == 60
    assert successor.terms == o.terms
    assert successor.publish().version == o.publish().version


def test_a_version_record_holds_only_what_workers_read_and_a_successor_catches_up_from_an_older_state() -> None:
    o, a = warmed(topics=2)
    msgs = [m for i in range(3) for m in sent(a, stream("r/0", 20 + 10 * i, 10))]
    o.receive(msgs[0], position=1)
    state = decode_snapshot(encode_snapshot(o.snapshot(o.publish())))  # the state topic's newest record
    o.receive(msgs[1], position=2)
    view = o.publish()  # a version after that state: on the model topic only
    record = decode_snapshot(encode_snapshot(view.to_snapshot(o.position)))
    assert not {"terms", "examples_state"} & set(record), "the owner's counts are not every worker's business"
    got = ModelView.from_snapshot(record)
    assert (got.version, got.seen, dict(got.merged), record["position"]) == (view.version, view.seen, view.merged, 2)
    assert (got.keywords, got.examples, got.topic_of, got.generic) == (view.keywords, view.examples, view.topic_of,
                                                                      view.generic)
    np.testing.assert_array_equal(got.centers, view.centers)
    np.testing.assert_array_equal(got.sizes, view.sizes)
    successor = ModelOwner.restore(state)
    for position, m in [(2, msgs[1]), (3, msgs[2])]:  # the learning records after the state, then new ones
        successor.receive(m, position=position)
    o.receive(msgs[2], position=3)
    np.testing.assert_array_equal(successor.clusterer.centers, o.clusterer.centers)
    assert successor.terms == o.terms and successor.examples == o.examples
    successor.number = max(successor.number, got.number)  # what the worker's shell does with the newest version
    assert successor.publish().version == o.publish().version


def varied(start: int, n: int) -> list[Sample]:
    """Texts whose words shift with the offset, so that every re-ranking of the keywords can change them."""
    return [sample("r/0", start + i, i % 4, user=f"u{i % 6}", tokens=(f"w{i % 4}", f"t{(start + i) // 7 % 9}"))
            for i in range(n)]


def test_a_successor_from_an_older_state_numbers_after_and_shows_what_the_newest_version_showed() -> None:
    o, a = warmed(topics=2)
    msgs = [m for i in range(14) for m in sent(a, varied(20 + 10 * i, 10))]
    o.receive(msgs[0], position=1)
    state = decode_snapshot(encode_snapshot(o.snapshot(o.publish())))  # version 2's state; 3..13 follow without one
    for position, m in enumerate(msgs[1:12], start=2):
        o.receive(m, position=position)
        newest = o.publish()
    assert newest.number == 13 and newest.keywords != ModelView.from_snapshot(state).keywords, "re-ranked at 11"
    successor = ModelOwner.restore(state)
    successor.continue_after(ModelView.from_snapshot(decode_snapshot(encode_snapshot(newest.to_snapshot(12)))))
    for position, m in enumerate(msgs[1:12], start=2):  # the records acked after versions 3..13
        successor.receive(m, position=position)
    for position, m in enumerate(msgs[12:], start=13):
        o.receive(m, position=position)
        successor.receive(m, position=position)
        mine, theirs = successor.publish(), o.publish()
        assert (mine.version, mine.keywords, mine.topic_keywords) == (theirs.version, theirs.keywords,
                                                                     theirs.topic_keywords)
    retried = ModelOwner.restore(state)  # version 2 failed after its state was written, and was retried ranked anew
    retried.continue_after(dataclasses.replace(ModelView.from_snapshot(state), keywords={0: ["重新排名"]}))
    assert (retried.number, retried.view().keywords) == (2, {0: ["重新排名"]}), "the published one is what workers saw"
    other = ModelOwner.restore(state)
    other.clusterer.lineage = "another"
    other.continue_after(newest)
    assert other.number == 2, "another lineage's numbers say nothing about this one"


def test_describing_the_state_changes_no_later_version() -> None:
    o, a = warmed(topics=2)
    first, later = sent(a, varied(20, 10)), sent(a, varied(100, 10))  # later: words the first batch has not
    o.receive(first[0], position=1)
    o.publish()
    o.receive(a.forget_message({}, "u1"), position=2)  # clears the ranked keywords: the next version ranks again
    twin, stale = copy.deepcopy(o), copy.deepcopy(o)
    stale._keywords = stale._rank_keywords()  # what keeping a ranking made at the checkpoint would show
    o.snapshot()  # a checkpoint between the forget and the next version
    for owner_ in (o, twin, stale):
        owner_.receive(later[0], position=3)
    assert stale.publish().keywords != twin.publish().keywords, "the probe can tell the two apart"
    assert o.publish().keywords == twin.view().keywords


def test_a_word_labels_a_cluster_only_when_three_distinct_users_wrote_it() -> None:
    o = owner(k=2, warmup=13)
    learner = Learner(ENC)
    spam = [Sample("r/0", i, i, AXES[0], ("鲲鹏", "屏幕"), text="鲲鹏 屏幕", user="p_spammer") for i in range(8)]
    others = [Sample("r/0", 10 + i, 10 + i, AXES[0], ("屏幕",), text="屏幕", user=f"p_user{i % 2}") for i in range(4)]
    hotel = [Sample("r/0", 20, 20, AXES[1], ("酒店",), user="p_x")]
    run_locally(o, learner, [*spam, *others, *hotel], force=True)
    words = {w for ws in learner.keywords(5).values() for w in ws}
    assert "鲲鹏" not in words, "one user's word, however often, is no keyword"
    assert "屏幕" in words, "three distinct users wrote it"
    shown = [t for texts in learner.view.examples.values() for t in texts]
    assert "鲲鹏 屏幕" not in shown and "屏幕" in shown, "a snippet is shown only if each of its words has 3 writers"
    deliver(o, learner, [learner.forget_message({}, "p_user0")])
    assert "屏幕" not in {w for ws in learner.keywords(5).values() for w in ws}, "a forgotten writer no longer counts"
    assert ClusterTerms.from_dict(json.loads(json.dumps(o.terms.to_dict()))) == o.terms


def test_a_forget_takes_held_warmup_samples_back_whether_or_not_the_fit_used_them() -> None:
    o = owner(k=2, warmup=6)
    a = Learner(ENC)
    gone = [Sample("r/0", i, i, AXES[0], ("独一无二",), user="gone") for i in range(2)]
    for m in sent(a, gone):
        o.receive(m)
    dropped = a.drop_held(lambda user, ts: user == "gone")
    assert not a.pending and dropped[0]["samples"]
    for m in dropped:
        o.receive(m)
    assert not o.held
    # the same when the fit had already used them
    o2, b = owner(k=2, warmup=4), Learner(ENC)
    run_locally(o2, b, [*gone, *[Sample("r/0", 5 + i, 5 + i, AXES[1], ("酒店",), user=f"x{i}") for i in range(2)]])
    assert any("独一无二" in c for c in o2.terms.counts.values())
    deliver(o2, b, [{**dropped[0], "terms": {}}])
    assert not any("独一无二" in c for c in o2.terms.counts.values())


def test_warmup_samples_taken_back_twice_take_their_words_out_once() -> None:
    """Stage 1 re-sends a dropped sample's forget when it dies before its checkpoint: other writers'
    counts of the same words must stay, also in an owner restored from the state in between."""
    o, a = owner(k=2, warmup=6), Learner(ENC)
    gone = [Sample("r/0", i, i, AXES[0], ("共同",), user="gone") for i in range(2)]
    others = [Sample("r/0", 5 + i, 5 + i, AXES[0], ("共同",), user=f"x{i}") for i in range(2)]
    hotel = [Sample("r/0", 9 + i, 9 + i, AXES[1], ("酒店",), user=f"y{i}") for i in range(2)]
    run_locally(o, a, [*gone, *others, *hotel], force=True)
    [cluster] = [c for c, counts in o.terms.counts.items() if "共同" in counts]
    assert o.terms.counts[cluster]["共同"] == pytest.approx(4)
    request = {"type": "forget", "tag": "t", "terms": {}, "samples": [
        {"source": s.source, "offset": s.offset, "vec": encode_array(s.embedding), "tokens": list(s.tokens)} for s in gone]}
    o.receive(request)
    assert o.terms.counts[cluster]["共同"] == pytest.approx(2)
    o.receive(request)
    successor = ModelOwner.restore(json.loads(json.dumps(o.snapshot())))
    successor.receive(request)
    assert o.terms.counts[cluster]["共同"] == successor.terms.counts[cluster]["共同"] == pytest.approx(2)


def test_messages_of_another_encoder_or_malformed_ones_are_counted_and_skipped() -> None:
    o = owner(k=2, warmup=2)
    o.receive({"type": "warmup", "encoder": "other@9", "parts": []})
    o.receive({"type": "learn", "encoder": ENC, "parts": [{"source": "r/0"}]})
    o.receive({"type": "surprise", "encoder": ENC})
    o.receive("not even a mapping")  # type: ignore[arg-type]
    assert o.counts["foreign"] == 1 and o.counts["invalid"] == 3
    assert not o.clusterer.fitted


def test_a_learner_ignores_views_of_another_encoder_and_older_versions() -> None:
    o = owner(k=2, warmup=4)
    learner = Learner(ENC)
    run_locally(o, learner, stream("r/0", 0, 4))
    newest = learner.view
    o.number = 0
    assert not learner.use(o.view()), "an older number of the same lineage"
    other = ModelView("other@9", "x", 99, newest.centers, newest.sizes, 0, {})
    assert not learner.use(other)
    assert learner.view is newest


@pytest.mark.parametrize("data", [b"", b"not zlib", encode_snapshot({"x": 1})[:-3],
                                  __import__("zlib").compress(b"[1, 2]")])
def test_bytes_that_are_not_a_snapshot_are_refused_clearly(data: bytes) -> None:
    with pytest.raises(ModelFormatError):
        ModelView.from_snapshot(decode_snapshot(data))


def test_a_snapshot_without_its_parts_is_refused() -> None:
    with pytest.raises(ModelFormatError):
        ModelView.from_snapshot(decode_snapshot(encode_snapshot({"clusterer": {}})))


def test_covered_positions_are_the_last_offset_per_partition() -> None:
    message = {"parts": [{"source": "r/0", "first": 3, "last": 9}, {"source": "r/1", "first": 0, "last": 2},
                         {"source": "r/0", "first": 10, "last": 12}, {"bad": 1}]}
    assert covered_positions(message) == {"r/0": 12, "r/1": 2}


def test_clusters_of_generic_review_words_are_recognised() -> None:
    terms = ClusterTerms({0: {"好评": 5.0, "物流": 4.0, "快递": 3.0, "屏幕": 1.0}, 1: {"屏幕": 5.0, "电池": 4.0, "好评": 1.0}})
    assert generic_clusters(terms) == {0}


def test_a_batch_whose_send_failed_is_sent_again_and_the_owner_keeps_one_copy() -> None:
    o, a = warmed()
    batch = stream("r/0", 20, 10)
    lost = a.step(batch)  # never confirmed: the send failed, the records come again
    again = a.step(batch)
    assert again.messages and again.covers == lost.covers == {"r/0": 29}
    for m in [*lost.messages, *again.messages]:  # both reached the topic after all
        o.receive(m)
    assert o.clusterer.seen == 30 and o.counts["duplicate"] == 1


@pytest.mark.parametrize("secret", ["11010519491231002*", "138 然后 1234 然后 5678", "一三八一二三四五六七八", "１３８"])
def test_a_snippet_with_numbers_is_never_shown_however_common_its_words(secret: str) -> None:
    """Numbers are not tokens, so three writers of the words cannot vouch for them."""
    o = owner(k=2, warmup=21)
    learner = Learner(ENC)
    common = [Sample("r/0", i, i, AXES[0], ("质量", "电话"), text="质量很好 电话", user=f"u{i % 5}") for i in range(20)]
    mine = Sample("r/0", 30, 30, AXES[0], ("质量", "电话"), text=f"质量很好 电话 {secret}", user="u0")
    run_locally(o, learner, [*common, mine], force=True)
    shown = [t for texts in learner.view.examples.values() for t in texts]
    assert "质量很好 电话" in shown and not any(secret in t for t in shown)


def test_ordinary_words_with_numerals_still_make_snippets() -> None:
    from stream.core.model_owner import _digits
    assert _digits("质量一般，三星手机，一个一个试") < 3
    assert _digits("一三八") == 3 and _digits("电话 1 3 8") == 3


def test_a_forget_request_sent_again_takes_its_words_out_once_even_after_a_takeover() -> None:
    """Stage 2 sends a request's words before it deletes the profile, so a crash in between sends them
    again; subtracting twice would take other writers' counts."""
    o, a = warmed()
    cluster, word = next((c, w) for c, counts in o.terms.counts.items() for w in counts)
    before = o.terms.counts[cluster][word]
    request = a.forget_message({str(cluster): {word: 1}}, "u0", ForgetRef("updates/0", 7, 0))
    o.receive(request, position=1)
    o.receive(request, position=2)  # the redelivered request, a new learning record
    assert o.terms.counts[cluster][word] == pytest.approx(before - 1)
    successor = ModelOwner.restore(json.loads(json.dumps(o.snapshot())))
    successor.receive(request, position=3)
    assert successor.terms.counts[cluster][word] == pytest.approx(before - 1), "the state remembers it"
    successor.receive(a.forget_message({str(cluster): {word: 1}}, "u1", ForgetRef("updates/0", 7, 1)), position=4)
    successor.receive(a.forget_message({str(cluster): {word: 1}}, "u2", ForgetRef("updates/1", 3, 0)), position=5)
    assert successor.terms.counts[cluster][word] == pytest.approx(before - 3), "later requests, other partitions"
    assert successor.counts["duplicate"] == 1
