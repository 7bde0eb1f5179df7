"""The semantic cache's guard: when two prompts that embed close together may share one answer.

Measured on tests/data/cache_pairs.jsonl (``python -m benchmarks.cache_threshold``): all-MiniLM-L6-v2 puts
prompts that differ in one decisive word, or only in word order, as close as paraphrases or closer:
"Convert 5 kilometers to miles" vs "... 5 miles to kilometers" 0.993, "Did Alice call Bob?" vs "Did Bob call
Alice?" 0.991, "ascending" vs "descending" order 0.973, "Is the earth flat?" vs "... not flat?" 0.970, while
paraphrases that change a content word ("Who wrote Hamlet?" vs "Who is the author of Hamlet?" 0.952) sit in
the same range. No threshold separates them, so a semantic hit also needs equal ``Signature``s: the two
prompts may differ in form only, never in content:

- form (ignored): case, spacing, punctuation, contractions ("what's", "isn't" = "is not"), possessive "'s",
  plural "s", number words vs digits ("three" = "3"), operator words vs symbols ("plus", "sum" = "+"), and
  the ``FRAMING`` words that frame a question without changing it ("what is", "please", "compute", "the").
- content (must be equal, in the same order): every other word, lower-cased. That includes negations (all
  mapped to "not"), question words other than what/which ("when" vs "where"), tense ("was", "will"),
  prepositions ("in" vs "on"), "than", "or", comparatives and superlatives (no stemming beyond plurals), and
  verbs that say what kind of answer is wanted ("list", "describe", "name", "explain"). Order counts because
  swapped words are a different question ("Does the cat chase the dog?", "chocolate milk" vs "milk chocolate").
- numbers and operators: equal, each in the same order ("7 minus 2" vs "2 minus 7", "3+4" vs "3*4");
- quoted text: equal exactly ("translate 'good morning'" vs "translate 'good night'").

Every rule errs towards a miss: what they do not understand only loses a hit. The cost is the paraphrases
that reword or reorder content ("Which city is the capital of France?", "Is Paris France's capital?"): they
miss. The share that still hits is measured by the benchmark and asserted by tests/unit/test_gateway_cache.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kept short on purpose: a word missing here costs a hit, a word wrongly here could cost a wrong answer.
# The tails of contractions ("what's", "I'm", "we've", "they're") are here too; "'d" (had or would) is not.
FRAMING = frozenset({
    "a", "an", "the", "what", "which", "please", "kindly", "tell", "give", "me", "compute", "calculate",
    "is", "are", "am", "be", "been", "being", "it", "of", "and", "there", "q", "s", "m", "ve", "re",
})  # fmt: skip
NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without"})
IRREGULAR = {"does": "do", "has": "have", "were": "was"}
NOT_BASES = {"wo": "will", "sha": "shall", "ca": "can"}  # what "won't", "shan't", "can't" leave before "n't"
OPERATOR_WORDS = {
    "plus": "+", "add": "+", "added": "+", "sum": "+",
    "minus": "-", "subtract": "-", "subtracted": "-",
    "times": "*", "multiply": "*", "multiplied": "*", "product": "*",
    "divide": "/", "divided": "/", "quotient": "/",
}  # fmt: skip
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
NUMBER_WORDS = {w: str(i) for i, w in enumerate((_UNITS + "seventeen eighteen nineteen").split())}
NUMBER_WORDS |= {w: str(10 * i) for i, w in enumerate(_TENS.split(), 2)}
NUMBER_WORDS |= {"hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000"}
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth"
NUMBER_WORDS |= {w: f"{i}th" for i, w in enumerate(_ORDINALS.split(), 1)}

_TOKEN = re.compile(
    r"""(?P<quote>"[^"]*"|“[^”]*”|`[^`]*`|(?<![\w'’])'[^']+'(?!\w))"""
    r"""|(?P<ordinal>\d+(?:st|nd|rd|th)\b)"""
    r"""|(?P<number>\d+(?:[.,]\d+)*)"""
    r"""|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"""
    r"""|(?P<op>[-+*/×÷^%<>()])"""
)
_SYMBOLS = {"×": "*", "÷": "/"}


@dataclass(frozen=True)
class Signature:
    """What must be equal between two prompts for one's answer to serve the other."""

    content: tuple[str, ...]
    numbers: tuple[str, ...]
    operators: tuple[str, ...]
    quotes: tuple[str, ...]


def _plain(word: str) -> str:
    """A word's content form: lower case, plural ``s`` off ("Spiders" = "spider"; "larger" stays)."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(token: str) -> list[str]:
    """A word token in lower case, contractions split: "isn't" -> is, not; "cannot" -> can, not."""
    lower = token.lower().replace("’", "'")
    if lower.endswith("n't"):
        return [NOT_BASES.get(lower[:-3], lower[:-3]), "not"]
    if lower == "cannot":
        return ["can", "not"]
    return [part for part in lower.split("'") if part]


def signature(text: str) -> Signature:
    content: list[str] = []
    numbers: list[str] = []
    operators: list[str] = []
    quotes: list[str] = []
    tokens = list(_TOKEN.finditer(text))
    after_operator = False  # "multiplied by", "divided by": the "by" is part of the operator
    for i, m in enumerate(tokens):
        kind, raw = m.lastgroup, m.group()
        if kind == "quote":
            quotes.append(raw[1:-1].strip())
        elif kind == "number":
            numbers.append(raw.replace(",", ""))
        elif kind == "ordinal":
            numbers.append(f"{int(raw[:-2])}th")
        elif kind == "op":
            # A hyphen is a minus only before a number ("3-4", "-4"), not in "well-known".
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if raw != "-" or (nxt is not None and nxt.lastgroup == "number"):
                operators.append(_SYMBOLS.get(raw, raw))
        else:
            for word in _words(raw):
                part_of_operator = word == "by" and after_operator
                after_operator = word in OPERATOR_WORDS
                if part_of_operator:
                    continue
                if word in NUMBER_WORDS:
                    numbers.append(NUMBER_WORDS[word])
                elif word in OPERATOR_WORDS:
                    operators.append(OPERATOR_WORDS[word])
                elif word in NEGATIONS:
                    content.append("not")
                elif word not in FRAMING:
                    content.append(_plain(word))
            continue
        after_operator = False
    return Signature(tuple(content), tuple(numbers), tuple(operators), tuple(quotes))


def same_meaning(a: str, b: str) -> bool:
    """Whether the guard lets one prompt's cached answer serve the other (their embeddings being close)."""
    return signature(a) == signature(b)
