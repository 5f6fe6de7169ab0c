#!/usr/bin/env python3
"""Derives EmotiBot's emotion lexicon (data/emotion/lexicon.tsv) and VADER modifiers
(data/emotion/vader_modifiers.tsv). Python 3.11, standard library only.

Inputs (none of them are shipped raw):
  --train     GoEmotions train.tsv (`text<TAB>label`, seven Ekman labels), CC BY 4.0
  --vader     unpacked `vaderSentiment/` directory of the PyPI package vadersentiment==3.3.2, MIT
  --cldr      `annotations/en/annotations.json` of the npm package cldr-annotations-full, Unicode-3.0

Method:
  1. Tokenise each comment exactly as `src/emotion/tokenizer.rs` does (ASCII lowercase, internal
     apostrophes kept, letters repeated 3+ times collapsed to 2, `!`/`?` runs, emoji clusters),
     with words inside a negation scope weighted by VADER's N_SCALAR (-0.74), like the scorer.
  2. Fit a multinomial logistic regression (L2, AdaGrad, partly class-balanced) on those token
     counts. Each token's row of
     seven weights is its lexicon entry; the intercepts become the `bias` row.
  3. Words in VADER's lexicon that GoEmotions never showed get a vector predicted from their VADER
     valence by a least-squares fit of the learned vectors on valence (so general sentiment words
     from other domains still count).
  4. Emoji get the log-ratio of the mean emotion distribution of the words describing them (CLDR
     keywords and names, VADER's emoji descriptions) to the empty-text distribution, added to what
     the regression learned for them directly.
  5. Emoticons from VADER's lexicon get a vector from their valence, pointed at the emotion their
     shape shows (frown -> sadness, angry brows -> anger, open mouth -> surprise, smile -> joy).
"""
import argparse
import collections
import json
import math
import os
import random
import sys

LABELS = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]
JOY, NEUTRAL = LABELS.index("joy"), LABELS.index("neutral")

# Must match src/emotion/scorer.rs.
NEGATION_SCALE = -0.74  # VADER's N_SCALAR
NEGATION_SCOPE = 3  # words after a negator that it flips (VADER looks back three words)
MAX_WORD_BYTES = 32  # longer words are never looked up

# Training hyper-parameters (chosen on GoEmotions dev, see docs/EMOTION.md).
EPOCHS = 5
L2 = 1e-4
LEARNING_RATE = 0.1
MIN_COUNT = 2
# Each example's loss is weighted by (N / (7 * n_label)) ** power: a partial rebalancing that lifts
# the rare labels (disgust, fear) without letting their few comments dominate.
CLASS_WEIGHT_POWER = 0.3
MIN_WEIGHT = 0.02  # rows whose largest |weight| is below this carry no signal and are dropped
EMOJI_DESCRIPTION_GAIN = 3.0  # a lone emoji is a deliberate signal: it should beat the neutral prior
EMOTICON_GAIN = 0.6  # logit per unit of VADER valence (valence is -4..4)

ZWJ = "\u200d"
MODIFIERS = {"\ufe0f", "\ufe0e", "\u20e3"} | {chr(c) for c in range(0x1F3FB, 0x1F400)}
APOSTROPHES = {"'", "\u2019", "\u2018"}
CLAUSE_PUNCT = set(".,;:")


def ascii_lower(ch):
    return chr(ord(ch) + 32) if "A" <= ch <= "Z" else ch


def is_word_byte(ch):
    return ch.isascii() and ch.isalnum()


def is_emoji_start(ch):
    return (not ch.isascii()) and not ch.isalnum() and not ch.isspace() and ch not in MODIFIERS \
        and ch != ZWJ and ch not in APOSTROPHES


def collapse_elongation(word):
    out = []
    for ch in word:
        if len(out) >= 2 and out[-1] == ch and out[-2] == ch:
            continue
        out.append(ch)
    return "".join(out)


def scan(text):
    """Yields (kind, token) with kind in word/punct/clause/emoji, in text order."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if is_word_byte(ch):
            j = i
            chars = []
            while j < n:
                c = text[j]
                if is_word_byte(c):
                    chars.append(ascii_lower(c))
                    j += 1
                elif c in APOSTROPHES and j + 1 < n and is_word_byte(text[j + 1]) and chars:
                    chars.append("'")
                    j += 1
                else:
                    break
            word = collapse_elongation("".join(chars))
            yield ("word", word if len(word.encode()) <= MAX_WORD_BYTES else "")
            i = j
        elif ch in "!?":
            j = i
            while j < n and text[j] in "!?":
                j += 1
            run = text[i:j]
            if "!" in run:
                yield ("punct", "!")
            if "?" in run:
                yield ("punct", "?")
            i = j
        elif ch in CLAUSE_PUNCT:
            yield ("clause", ch)
            i += 1
        elif is_emoji_start(ch):
            key = ch
            j = i + 1
            while j < n:
                if text[j] in MODIFIERS:
                    j += 1
                elif text[j] == ZWJ and j + 1 < n and is_emoji_start(text[j + 1]):
                    key += ZWJ + text[j + 1]
                    j += 2
                else:
                    break
            yield ("emoji", key)
            i = j
        else:
            i += 1


def features(text, negators):
    """Token -> summed feature value, negated words scaled like the scorer does."""
    feats = collections.Counter()
    scope = 0
    for kind, tok in scan(text):
        if kind in ("clause", "punct"):
            scope = 0
            if kind == "punct":
                feats[tok] += 1.0
            continue
        if not tok:
            scope = max(scope - 1, 0)
            continue
        if tok == "but":
            scope = 0
        value = 1.0
        if scope > 0:
            scope -= 1
            value = NEGATION_SCALE
        feats[tok] += value
        if kind == "word" and (tok in negators or tok.endswith("n't")):
            scope = NEGATION_SCOPE
    return list(feats.items())


def load_tsv(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "\t" not in line:
                continue
            text, label = line.rsplit("\t", 1)
            if label in LABELS:
                texts.append(text)
                labels.append(LABELS.index(label))
    return texts, labels


def train_logistic_regression(rows, labels):
    counts = collections.Counter(tok for row in rows for tok, _ in row)
    label_counts = collections.Counter(labels)
    class_weight = [
        (len(labels) / (7 * label_counts[c])) ** CLASS_WEIGHT_POWER if label_counts[c] else 0.0
        for c in range(7)
    ]
    weights, grad_sq, bias = {}, {}, [0.0] * 7
    order = list(range(len(rows)))
    rng = random.Random(1)
    for _ in range(EPOCHS):
        rng.shuffle(order)
        for i in order:
            row = [(t, v) for t, v in rows[i] if counts[t] >= MIN_COUNT]
            z = bias[:]
            for tok, v in row:
                w = weights.get(tok)
                if w:
                    for c in range(7):
                        z[c] += w[c] * v
            top = max(z)
            e = [math.exp(x - top) for x in z]
            total = sum(e)
            example_weight = class_weight[labels[i]]
            grad = [example_weight * x / total for x in e]
            grad[labels[i]] -= example_weight
            for c in range(7):
                bias[c] -= LEARNING_RATE * 0.1 * grad[c]
            for tok, v in row:
                w = weights.get(tok)
                if w is None:
                    w = weights[tok] = [0.0] * 7
                    grad_sq[tok] = [1e-8] * 7
                g2 = grad_sq[tok]
                for c in range(7):
                    g = grad[c] * v + L2 * w[c]
                    g2[c] += g * g
                    w[c] -= LEARNING_RATE * g / math.sqrt(g2[c])
    return weights, bias


def load_vader(vader_dir):
    sys.path.insert(0, vader_dir)
    import vaderSentiment  # noqa: E402  (the package's module; imports only the standard library)

    valence = {}
    with open(os.path.join(vader_dir, "vader_lexicon.txt"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                valence[parts[0]] = float(parts[1])
    emoji_names = {}
    with open(os.path.join(vader_dir, "emoji_utf8_lexicon.txt"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                emoji_names[parts[0]] = parts[1]
    return vaderSentiment, valence, emoji_names


def fit_valence(weights, valence):
    """Per label, least squares w_c ~ a_c * positive(v) + b_c * negative(v)."""
    pairs = [(valence[t], weights[t]) for t in weights if t in valence and t.isalpha()]
    fit = []
    for c in range(7):
        spp = sum(max(v, 0) ** 2 for v, _ in pairs)
        snn = sum(min(v, 0) ** 2 for v, _ in pairs)
        sp = sum(max(v, 0) * w[c] for v, w in pairs)
        sn = sum(-min(v, 0) * w[c] for v, w in pairs)
        fit.append((sp / spp if spp else 0.0, sn / snn if snn else 0.0))
    return fit


def valence_vector(fit, v):
    return [a * max(v, 0) + b * max(-v, 0) for a, b in fit]


def softmax(z):
    top = max(z)
    e = [math.exp(x - top) for x in z]
    total = sum(e)
    return [x / total for x in e]


def description_vector(phrases, entries, bias, prior):
    """Log-ratio of the describing words' mean predicted distribution to the empty-text one.

    Each word's distribution is weighted by how little it predicts neutral, so that `face`, `hand`
    or `red` do not drown out `fear` or `crying`. None when no describing word is known."""
    mean, total_weight = [0.0] * 7, 0.0
    for phrase in phrases:
        for kind, tok in scan(phrase):
            if kind != "word" or tok not in entries or entries[tok][0] != "word":
                continue
            p = softmax([w + b for w, b in zip(entries[tok][1], bias)])
            weight = (1.0 - p[NEUTRAL]) ** 2
            mean = [m + weight * x for m, x in zip(mean, p)]
            total_weight += weight
    if total_weight == 0.0:
        return None
    return [math.log(max(m / total_weight, 1e-4)) - math.log(q) for m, q in zip(mean, prior)]


def emoji_key(sequence):
    return "".join(ch for ch in sequence if ch not in MODIFIERS)


def emoticon_label(emoticon, v):
    if v > 0:
        return "joy"
    if ">" in emoticon and emoticon.index(">") == 0:
        return "anger"
    if v > -1.0 and any(m in emoticon for m in "Oo0"):
        return "surprise"
    return "sadness"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--vader", required=True)
    ap.add_argument("--cldr", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../data/emotion"))
    args = ap.parse_args()

    vader_module, valence, vader_emoji = load_vader(args.vader)
    negators = set(vader_module.NEGATE) | {"no"}

    texts, labels = load_tsv(args.train)
    rows = [features(t, negators) for t in texts]
    weights, bias = train_logistic_regression(rows, labels)
    print(f"trained on {len(texts)} texts, {len(weights)} tokens", file=sys.stderr)

    entries = {}  # key -> (kind, vector)
    for tok, w in weights.items():
        if max(abs(x) for x in w) < MIN_WEIGHT:
            continue
        kind = "punct" if tok in ("!", "?") else "emoji" if is_emoji_start(tok[0]) else "word"
        entries[tok] = (kind, w)

    fit = fit_valence(weights, valence)
    for tok, v in valence.items():
        if tok.isalpha() and tok.isascii() and tok.lower() == tok and tok not in weights:
            entries[tok] = ("word", valence_vector(fit, v))

    with open(args.cldr, encoding="utf-8") as f:
        cldr = json.load(f)["annotations"]["annotations"]
    descriptions = collections.defaultdict(list)
    for seq, ann in cldr.items():
        if seq and is_emoji_start(seq[0]):
            for phrase in ann.get("default", []) + ann.get("tts", []):
                descriptions[emoji_key(seq)].append(phrase)
    for seq, name in vader_emoji.items():
        if seq and is_emoji_start(seq[0]):
            descriptions[emoji_key(seq)].append(name)
    prior = softmax(bias)
    for key, phrases in descriptions.items():
        vector = description_vector(phrases, entries, bias, prior)
        if vector is None:
            continue
        learned = weights.get(key, [0.0] * 7)
        entries[key] = ("emoji", [EMOJI_DESCRIPTION_GAIN * d + l for d, l in zip(vector, learned)])

    for tok, v in valence.items():
        if tok.isascii() and not tok.isalpha() and " " not in tok and len(tok) >= 2:
            vec = [0.0] * 7
            vec[LABELS.index(emoticon_label(tok, v))] = EMOTICON_GAIN * abs(v)
            vec[NEUTRAL] = -EMOTICON_GAIN * abs(v) / 2
            entries[tok] = ("emoticon", vec)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lexicon.tsv"), "w", encoding="utf-8") as f:
        f.write("# EmotiBot emotion lexicon, generated by scripts/lexicon/derive.py; do not edit.\n")
        f.write("# Derived from GoEmotions (c) Google LLC, CC BY 4.0 (Demszky et al., ACL 2020);\n")
        f.write("# VADER lexicon and emoji descriptions (c) 2016 C.J. Hutto, MIT;\n")
        f.write("# Unicode CLDR emoji annotations (c) Unicode, Inc., Unicode-3.0. See THIRD_PARTY.md.\n")
        f.write("# kind\tkey\t" + "\t".join(LABELS) + "\n")
        f.write("bias\t-\t" + "\t".join(f"{x:.4f}" for x in bias) + "\n")
        for key in sorted(entries):
            kind, vec = entries[key]
            f.write(f"{kind}\t{key}\t" + "\t".join(f"{x:.4f}" for x in vec) + "\n")
    with open(os.path.join(args.out, "vader_modifiers.tsv"), "w", encoding="utf-8") as f:
        f.write("# Negators and degree adverbs from vaderSentiment 3.3.2 (c) 2016 C.J. Hutto, MIT;\n")
        f.write("# single words only, plus the negator `no`. Generated by scripts/lexicon/derive.py.\n")
        for word in sorted(negators):
            f.write(f"negator\t{word}\t0\n")
        for word, scalar in sorted(vader_module.BOOSTER_DICT.items()):
            if " " not in word and "-" not in word:
                f.write(f"booster\t{word}\t{scalar}\n")
    print(f"wrote {len(entries)} lexicon entries to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
