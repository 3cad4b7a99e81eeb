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
