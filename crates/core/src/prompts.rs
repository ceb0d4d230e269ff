//! The prompts of the embedded synthetic set's training recipes, shared by the data generator (which writes the
//! training conversations) and the inference pipelines (which must ask the trained model the same questions).

/// The human turn of one-stage samples (after `<|image|>\n`).
pub const ONE_STAGE_PROMPT: &str = "Evaluate the quality of this image. Describe its sharpness, noise, \
compression artefacts, exposure, contrast and colour, then conclude with its quality level.";
/// The human turn of stage-1 samples (after `<|image|>\n`).
pub const STAGE1_PROMPT: &str = "Describe the visual quality of this image: its sharpness, noise, \
compression artefacts, exposure, contrast and colour.";
/// The human turn of stage-2 samples, before the description (text only, no image).
pub const STAGE2_PROMPT: &str = "Here is a description of the visual quality of an image:";
/// The question of stage-2 samples, after the description.
pub const STAGE2_QUESTION: &str =
    "Based on this description, how would you rate the quality of the image?";
/// The human turn of Q-Align-style samples (after `<|image|>\n`): the answer is only the conclusion.
pub const DIRECT_PROMPT: &str = "How would you rate the quality of this image?";
