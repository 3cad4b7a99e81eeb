import pytest

from sdbench.world.grammar import ToyPrompt, base_prompts, parse, vocabulary, words


def test_parse_round_trip():
    p = ToyPrompt("red", "cube", "front", ("blurry",))
    assert p.text() == "a red cube, front view, blurry"
    assert parse(p.text()) == p
    assert parse("A Purple Torus, low contrast").degradations == ("low contrast",)


@pytest.mark.parametrize(
    "prompt,fragment",
    [
        ("a dragon", "unknown word: dragon"),
        ("", "empty"),
        ("a red blue cube", "exactly one colour"),
        ("a red", "exactly one colour"),
    ],
)
def test_parse_rejects(prompt, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(prompt)


def test_vocabulary_and_base_prompts():
    v = vocabulary()
    assert len(v) == len(set(v)) and {"torus", "orange", "overhead", "contrast"} <= set(v)
    assert len(base_prompts()) == 30 and base_prompts()[0] == "a red sphere"
    assert words("a red-cube, FRONT view!") == ["a", "red", "cube", "front", "view"]


# ----------------------------------------------------------------------------- world v2
from sdbench.cameras import VIEWS  # noqa: E402
from sdbench.world.grammar import (  # noqa: E402
    DEGRADATIONS,
    ambiguous_prompts,
    describe,
    full_prompts,
    readout_prompts,
    token_vocabulary,
)


def test_every_v1_prompt_means_the_same_in_v2():
    for base in base_prompts():
        for suffix in ("", ", front view", ", back view, blurry", ", low contrast"):
            assert parse(base + suffix, "v2") == parse(base + suffix, "v1")
    assert vocabulary("v2")[: len(vocabulary("v1"))] == vocabulary("v1")  # v1 token ids unchanged


def test_v2_prompts_round_trip_and_read_naturally():
    p = parse("a red striped cube with a face, front view, oversaturated", "v2")
    assert (p.colour, p.shape, p.pattern, p.marking, p.view, p.degradations) == (
        "red",
        "cube",
        "striped",
        "face",
        "front",
        ("oversaturated",),
    )
    assert p.text() == "a red striped cube with a face, front view, oversaturated"
    assert len(full_prompts()) == 6 * 4 * 5 * 2 and len(set(full_prompts())) == 240
    for text in full_prompts() + ambiguous_prompts():
        assert parse(text, "v2").text() == text
    assert parse("a red cube", "v2").surface == "plain" and parse("a red plain cube", "v2").pattern == "plain"


@pytest.mark.parametrize(
    "prompt,colour,shape,pattern",
    [("a cube", None, "cube", None), ("a red object", "red", None, None), ("a dotted object", None, None, "dotted")],
)
def test_ambiguous_prompts_leave_the_attribute_open(prompt, colour, shape, pattern):
    p = parse(prompt, "v2")
    assert (p.colour, p.shape, p.pattern) == (colour, shape, pattern) and p.ambiguous
    assert not parse("a red cube", "v2").ambiguous
    assert parse("an object", "v2").text() == "an object"


@pytest.mark.parametrize(
    "prompt,fragment",
    [
        ("a red striped cube", "unknown word: striped"),  # v1 does not know v2's words
        ("a red object", "unknown word: object"),
    ],
)
def test_v1_rejects_v2_words(prompt, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(prompt)


@pytest.mark.parametrize(
    "prompt,fragment",
    [
        ("a red cube object", "exactly one shape or 'object'"),
        ("a red", "exactly one shape or 'object'"),
        ("a striped dotted cube", "at most one colour, one pattern"),
        ("a red blue cube", "at most one colour"),
        ("a red cube with", "with a face"),
        ("a red cube face", "with a face"),
        ("a red cube with no face", "unknown word: no"),  # read-out words are not prompt words
        ("a red dragon", "unknown word: dragon"),
    ],
)
def test_v2_rejects(prompt, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(prompt, "v2")


def test_readout_prompts_cover_each_attribute_and_tokenise():
    r = readout_prompts()
    assert [len(r[k]) for k in ("shape", "colour", "pattern", "marking")] == [5, 6, 4, 2]
    known = set(token_vocabulary("v2"))
    assert all(set(words(p)) <= known for ps in r.values() for p in ps)
    assert "no" not in vocabulary("v2") and "no" in known


def test_describe_lists_the_v2_vocabulary():
    text = "\n".join(describe("v2"))
    for word in ("striped", "checkered", "dotted", "with a face", "object", *VIEWS, *DEGRADATIONS):
        assert word in text
    assert "striped" not in "\n".join(describe("v1"))
    with pytest.raises(ValueError, match="unknown toy world"):
        vocabulary("v3")
