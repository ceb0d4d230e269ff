//! Q-Pathway-style quality descriptions from a template grammar: a description of visual attributes (sharpness,
//! noise, compression artefacts, exposure, contrast, colour) followed by a conclusion sentence.

use biqa_metrics::Level;

use crate::distort::DistortionKind;
use biqa_core::SplitMix64;

/// The text of one image: a description and its conclusion, in the one-stage and the two-stage forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityText {
    /// The attribute description (stage-1 target; stage-2 input).
    pub description: String,
    /// The conclusion sentence, e.g. "Therefore, the quality of the image is poor." (stage-2 target).
    pub conclusion: String,
}

impl QualityText {
    /// The one-stage target: the description followed by the conclusion.
    pub fn full(&self) -> String {
        format!("{} {}", self.description, self.conclusion)
    }
}

/// The conclusion sentence for a level: "Therefore, the quality of the image is {word}."
pub fn conclusion(level: Level) -> String {
    format!("Therefore, the quality of the image is {}.", level.word())
}

const ADVERBS: [&str; 5] = ["barely", "slightly", "noticeably", "heavily", "severely"];
const ADJECTIVES: [&str; 5] = ["faint", "mild", "moderate", "strong", "severe"];

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Fills `{adv}` / `{adj}` / `{Adv}` / `{Adj}` in a template.
fn fill(t: &str, level: u8) -> String {
    let i = usize::from(level.clamp(1, 5) - 1);
    t.replace("{adv}", ADVERBS[i])
        .replace("{adj}", ADJECTIVES[i])
        .replace("{Adv}", &capitalise(ADVERBS[i]))
        .replace("{Adj}", &capitalise(ADJECTIVES[i]))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Sharpness,
    Noise,
    Compression,
    Exposure,
    Contrast,
    Colour,
}

const ATTRIBUTES: [Attribute; 6] = [
    Attribute::Sharpness,
    Attribute::Noise,
    Attribute::Compression,
    Attribute::Exposure,
    Attribute::Contrast,
    Attribute::Colour,
];

/// The attribute a distortion damages most (mentioned first), and the templates that describe it.
fn distorted(kind: DistortionKind) -> (Attribute, &'static [&'static str]) {
    match kind {
        DistortionKind::GaussianBlur => (
            Attribute::Sharpness,
            &[
                "The image is {adv} blurred, and fine details are softened.",
                "{Adj} blur affects the whole picture, smearing edges and textures.",
                "Edges look {adv} blurry, so the image lacks sharpness.",
            ],
        ),
        DistortionKind::WhiteNoise => (
            Attribute::Noise,
            &[
                "{Adj} random noise is visible across the image.",
                "The picture is {adv} noisy, with grainy speckles over flat areas.",
                "There is {adj} grain noise throughout the image.",
            ],
        ),
        DistortionKind::Jpeg => (
            Attribute::Compression,
            &[
                "{Adj} JPEG compression artefacts appear, with blocking around edges.",
                "The image is {adv} degraded by compression, showing blocky artefacts.",
                "Compression artefacts are {adv} visible: blocks and ringing near edges.",
            ],
        ),
        DistortionKind::Brighten => (
            Attribute::Exposure,
            &[
                "The image is {adv} overexposed, and bright regions look washed out.",
                "The picture is {adv} overexposed and too bright, losing detail in the highlights.",
                "{Adj} overexposure makes the picture look too bright.",
            ],
        ),
        DistortionKind::Darken => (
            Attribute::Exposure,
            &[
                "The image is {adv} underexposed and looks too dark.",
                "The picture is {adv} underexposed, hiding detail in dark shadows.",
                "{Adj} underexposure leaves the picture dark and dim.",
            ],
        ),
        DistortionKind::ContrastReduction => (
            Attribute::Contrast,
            &[
                "The contrast is {adv} reduced, so the image looks flat.",
                "{Adj} loss of contrast makes the picture look hazy and flat.",
                "The image has {adj} low contrast, and its tones are compressed toward grey.",
            ],
        ),
        DistortionKind::Pixelate => (
            Attribute::Sharpness,
            &[
                "The image is {adv} pixelated, with square blocks replacing fine detail.",
                "{Adj} pixelation turns edges into visible square blocks.",
                "Fine details are lost to {adj} pixelation.",
            ],
        ),
    }
}

/// Side effects of a distortion on another attribute (e.g. colour after contrast loss), from level 4 on.
fn side_effect(kind: DistortionKind) -> Option<(Attribute, &'static [&'static str])> {
    match kind {
        DistortionKind::Brighten => Some((
            Attribute::Colour,
            &[
                "Colours look pale and washed out.",
                "The colours are faded.",
            ],
        )),
        DistortionKind::Darken => Some((
            Attribute::Colour,
            &["Colours are muted in the dark.", "The colours look dull."],
        )),
        DistortionKind::ContrastReduction => Some((
            Attribute::Colour,
            &[
                "Colours are dull and faded.",
                "The colours lack saturation.",
            ],
        )),
        DistortionKind::GaussianBlur | DistortionKind::Pixelate => Some((
            Attribute::Sharpness,
            &["Textures can hardly be recognised."],
        )),
        _ => None,
    }
}

fn clean(attr: Attribute) -> &'static [&'static str] {
    match attr {
        Attribute::Sharpness => &[
            "The details are sharp and clear.",
            "Edges and textures are crisp.",
            "Fine details are well preserved.",
        ],
        Attribute::Noise => &[
            "No obvious noise is visible.",
            "The image is clean, without noticeable noise.",
            "Flat areas are smooth and free of grain.",
        ],
        Attribute::Compression => &[
            "There are no visible compression artefacts.",
            "No blocking or ringing artefacts can be seen.",
        ],
        Attribute::Exposure => &[
            "The exposure is well balanced.",
            "The lighting is adequate, neither too bright nor too dark.",
            "Brightness is appropriate.",
        ],
        Attribute::Contrast => &[
            "The contrast is good.",
            "Tones are well separated, with good contrast.",
        ],
        Attribute::Colour => &[
            "Colours are natural and vivid.",
            "The colours look rich and true to life.",
            "Colour rendition is natural.",
        ],
    }
}

const SCENE: [&str; 3] = [
    "This is a photo of {s}.",
    "The image shows {s}.",
    "The picture depicts {s}.",
];

/// A Q-Pathway-style text for an image of `subject` (e.g. "a cat", may be empty) with `distortion` at its level
/// (1–5; `None` for a reference), whose quality level is `level`. The wording is drawn from `rng`.
///
/// The description starts with a scene sentence, then the damaged attribute (it always names the distortion: blur,
/// noise, compression, overexposed/underexposed, contrast, pixelated), a side effect from level 4 on, then the other
/// attributes in a random order (three or four of them), each in one of several wordings.
pub fn describe(
    subject: &str,
    distortion: Option<(DistortionKind, u8)>,
    level: Level,
    rng: &mut SplitMix64,
) -> QualityText {
    let mut sentences: Vec<String> = Vec::new();
    if !subject.is_empty() {
        sentences.push(rng.pick(&SCENE).replace("{s}", subject));
    }
    let mut covered: Vec<Attribute> = Vec::new();
    if let Some((kind, lv)) = distortion {
        let (attr, templates) = distorted(kind);
        let template: &&str = rng.pick(templates);
        sentences.push(fill(template, lv));
        covered.push(attr);
        if lv >= 4
            && let Some((a2, t2)) = side_effect(kind)
        {
            sentences.push(rng.pick(t2).to_string());
            covered.push(a2);
        }
    }
    let mut rest: Vec<Attribute> = ATTRIBUTES
        .into_iter()
        .filter(|a| !covered.contains(a))
        .collect();
    rng.shuffle(&mut rest);
    let keep = (3 + rng.below(2)).min(rest.len());
    for attr in &rest[..keep] {
        sentences.push(rng.pick(clean(*attr)).to_string());
    }
    QualityText {
        description: sentences.join(" "),
        conclusion: conclusion(level),
    }
}

/// The distortion and strength that a description in this grammar states, read back from its text: the first
/// sentence holding a strength word (barely … severely, faint … severe) names the distortion (blur → Gaussian blur,
/// noise or grain → white noise, compression → JPEG, overexpos → brighten, underexpos → darken, contrast → contrast
/// reduction, pixelat → pixelate) and its strength (1–5). `Ok(None)` when no sentence states a strength (a
/// description of an undistorted image); `Err(sentence)` when a strength sentence names no distortion.
pub fn stated_distortion(description: &str) -> Result<Option<(DistortionKind, u8)>, String> {
    for sentence in description.split_inclusive(['.', '!', '?']) {
        let lower = sentence.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let strength = words.iter().find_map(|w| {
            ADVERBS
                .iter()
                .position(|a| a == w)
                .or_else(|| ADJECTIVES.iter().position(|a| a == w))
        });
        let Some(i) = strength else { continue };
        let kind = [
            ("overexpos", DistortionKind::Brighten),
            ("underexpos", DistortionKind::Darken),
            ("pixelat", DistortionKind::Pixelate),
            ("blur", DistortionKind::GaussianBlur),
            ("nois", DistortionKind::WhiteNoise),
            ("grain", DistortionKind::WhiteNoise),
            ("compression", DistortionKind::Jpeg),
            ("contrast", DistortionKind::ContrastReduction),
        ]
        .into_iter()
        .find(|(k, _)| lower.contains(k))
        .map(|(_, kind)| kind);
        return match kind {
            Some(kind) => Ok(Some((kind, i as u8 + 1))),
            None => Err(sentence.trim().to_owned()),
        };
    }
    Ok(None)
}

/// The pseudo-MOS a description implies by the set's own rule: that of the distortion and strength it states
/// ([`stated_distortion`]; none stated: an undistorted image, MOS 5). `None` when a strength sentence names no
/// distortion (the description is not in the grammar).
pub fn implied_mos(description: &str) -> Option<f64> {
    stated_distortion(description)
        .ok()
        .map(crate::distort::pseudo_mos)
}

/// The level a description implies by the set's own rule: its [`implied_mos`], binned by `binning`. `None` when a
/// strength sentence names no distortion (the description is not in the grammar).
pub fn implied_level(description: &str, binning: &biqa_metrics::MosBinning) -> Option<Level> {
    implied_mos(description).map(|m| binning.level(m))
}

/// A word that every description of `kind` contains (case-insensitive), for checks.
pub fn keyword(kind: DistortionKind) -> &'static str {
    match kind {
        DistortionKind::GaussianBlur => "blur",
        DistortionKind::WhiteNoise => "nois",
        DistortionKind::Jpeg => "compression",
        DistortionKind::Brighten => "bright",
        DistortionKind::Darken => "dark",
        DistortionKind::ContrastReduction => "contrast",
        DistortionKind::Pixelate => "pixelat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_mention_the_distortion_and_vary() {
        let mut rng = SplitMix64::new(11);
        for kind in DistortionKind::ALL {
            let mut seen = std::collections::BTreeSet::new();
            for lv in 1..=5 {
                for _ in 0..10 {
                    let t = describe("a cat", Some((kind, lv)), Level::Fair, &mut rng);
                    assert!(
                        t.description.to_lowercase().contains(keyword(kind)),
                        "{kind}: {}",
                        t.description
                    );
                    assert_eq!(t.conclusion, "Therefore, the quality of the image is fair.");
                    assert_eq!(
                        stated_distortion(&t.description),
                        Ok(Some((kind, lv))),
                        "{}",
                        t.description
                    );
                    assert!(t.full().ends_with(&t.conclusion));
                    seen.insert(t.description);
                }
            }
            assert!(seen.len() > 10);
        }
        let r = describe("", None, Level::Excellent, &mut rng);
        assert_eq!(stated_distortion(&r.description), Ok(None));
        assert!(!r.description.is_empty());
        assert!(r.conclusion.ends_with("excellent."));
    }
}
