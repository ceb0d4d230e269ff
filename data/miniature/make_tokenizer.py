#!/usr/bin/env python3
"""Train the SentencePiece tokenizer of the miniature mPLUG-Owl2 (data/miniature/tokenizer.model).

The corpus is every text the miniature sees: the synthetic set's Q-Pathway-style descriptions and conclusions
(from `biqa synth` JSON files given as arguments), the pre-alignment captions (the grammar of
`biqa::miniature::caption`, all subjects, processings and strengths), and the prompts of the recipes, pipelines and
scorers. The trainer options copy LLaMA-2's trainer spec (as the tiny-owl2 fixture does): BPE, byte fallback, split
digits, identity normalisation, dummy prefix, unk/bos/eos = 0/1/2, no pad; vocab 768, so that nearly every word of
the corpus is one piece and each level word (excellent, good, fair, poor, bad) is one piece.

Run from the repository root (sentencepiece 0.2.x):
    biqa synth --out /tmp/corpus_synth --per-photo 3
    python3 data/miniature/make_tokenizer.py /tmp/corpus_synth/*.json
"""
import json
import sys
from pathlib import Path

import sentencepiece as spm

SUBJECTS = [
    "an astronaut posing in front of a flag", "a tabby cat", "a cup of coffee on a saucer",
    "a rocket on its launch pad", "a man filming with a camera on a tripod", "rows of old coins",
    "galaxies in deep space", "a pagoda above a lake", "an orange dahlia",
]
PROCESSINGS = ["blurred", "overlaid with noise", "JPEG compressed", "brightened", "darkened",
               "reduced in contrast", "pixelated"]
SCENE = ["This is a photo of {s}.", "The image shows {s}.", "The picture depicts {s}."]
PROMPTS = [
    "Evaluate the quality of this image. Describe its sharpness, noise, compression artefacts, exposure, contrast "
    "and colour, then conclude with its quality level.",
    "Describe the visual quality of this image: its sharpness, noise, compression artefacts, exposure, contrast "
    "and colour.",
    "Here is a description of the visual quality of an image:",
    "Based on this description, how would you rate the quality of the image?",
    "How would you rate the quality of this image?",
    "USER: How would you rate the quality of this image?\nASSISTANT: The quality of the image is",
    "USER: Rate the quality of the image.\nASSISTANT: ",
    "Describe this photo.",
    "The quality of the image is excellent. The quality of the image is good. The quality of the image is fair. "
    "The quality of the image is poor. The quality of the image is bad.",
]


def main() -> None:
    lines = []
    for f in sys.argv[1:]:
        for rec in json.loads(Path(f).read_text()):
            for turn in rec["conversations"]:
                lines.extend(l for l in turn["value"].replace("<|image|>", "").split("\n") if l.strip())
    for s in SUBJECTS:
        for t in SCENE:
            lines.append(t.format(s=s))
        lines.append(f"A photo of {s}. It is unprocessed.")
        for p in PROCESSINGS:
            for n in range(1, 6):
                lines.append(f"A photo of {s}. It was {p}, strength {n}.")
    lines.extend(PROMPTS * 20)
    corpus = Path("/tmp/miniature_corpus.txt")
    corpus.write_text("\n".join(lines) + "\n")
    out = Path("data/miniature")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "tokenizer"), model_type="bpe", vocab_size=768,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, max_sentencepiece_length=16,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=0.9999, num_threads=1, minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    for w in ["excellent", "good", "fair", "poor", "bad"]:
        ids = sp.encode(w)
        assert len(ids) == 1, (w, sp.encode(w, out_type=str))
    n = [len(sp.encode(l)) for l in lines]
    print(f"{len(lines)} lines, vocab {sp.get_piece_size()}, mean {sum(n) / len(n):.1f} pieces per line")


if __name__ == "__main__":
    main()
