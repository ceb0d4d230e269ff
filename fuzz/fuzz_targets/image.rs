//! Fuzzes image decoding (every format biqa opens, with its pixel and ancillary budgets) and the Pillow-exact
//! preprocessing of whatever decodes (pad to square, resize and center-crop), at a small target size.
#![no_main]

use biqa_vision::{PILLOW_MAX_IMAGE_PIXELS, Preprocessor, ResizeMode, decode_rgb};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"{"crop_size": 56, "do_center_crop": true, "do_normalize": true, "do_resize": true,
  "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
  "resample": 3, "size": 56}"#;

static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // `decode_rgb` catches a decoder's panic and returns it as the file's error (a dependency's bug must fail one
    // image, not the process; test `a_decoder_panic_is_the_file_s_typed_error`). libfuzzer-sys's hook aborts on
    // any panic, caught or not, so the default hook is put back: a panic that escapes `decode_rgb` still aborts
    // through libfuzzer-sys's own `catch_unwind` around this closure.
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok(img) = decode_rgb(data, PILLOW_MAX_IMAGE_PIXELS) else {
        return;
    };
    // Resampling cost grows with the pixel count; the decode above is what is being fuzzed at any size.
    if u64::from(img.width()) * u64::from(img.height()) > 1 << 20 {
        return;
    }
    for mode in [ResizeMode::Pad, ResizeMode::ShortestEdgeCenterCrop] {
        let pre = Preprocessor::from_json_str(CONFIG, mode).expect("valid config");
        let _ = pre.resize_u8(&img);
    }
});
