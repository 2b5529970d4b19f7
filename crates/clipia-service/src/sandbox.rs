//! The sandbox (SPEC §9): what test keys get instead of a model run — the fixed sample files
//! the server ships, and the magic prompts that exercise failure and slow paths.

use clipia_catalog::ModelKind;
use clipia_core::JobError;
use serde_json::{json, Value};

use crate::files::SANDBOX_DIR;

/// Ends FAILED at once.
pub const PROMPT_FAIL: &str = "clipia:fail";
/// Stays IN_QUEUE, then IN_PROGRESS, for a few seconds before completing.
pub const PROMPT_SLOW: &str = "clipia:slow";
/// How long a `clipia:slow` job waits IN_QUEUE.
pub const SLOW_QUEUE_MS: i64 = 1_500;
/// How long a `clipia:slow` job then stays IN_PROGRESS.
pub const SLOW_RUN_MS: u64 = 2_000;

pub const IMAGE_PNG: &[u8] = include_bytes!("../fixtures/sandbox-image.png");
pub const IMAGE_WEBP: &[u8] = include_bytes!("../fixtures/sandbox-image.webp");
pub const VIDEO_MP4: &[u8] = include_bytes!("../fixtures/sandbox-video.mp4");
/// The shipped files' properties (see fixtures/README.md).
const IMAGE_SIDE_PX: u32 = 1024;
const VIDEO_WIDTH_PX: u32 = 1280;
const VIDEO_HEIGHT_PX: u32 = 720;
const VIDEO_DURATION_S: u32 = 5;
const VIDEO_FPS: u32 = 24;

/// The bytes of a shipped sandbox file, by its name under `sandbox/`.
pub fn file(name: &str) -> Option<&'static [u8]> {
    match name {
        "sandbox-image.png" => Some(IMAGE_PNG),
        "sandbox-image.webp" => Some(IMAGE_WEBP),
        "sandbox-video.mp4" => Some(VIDEO_MP4),
        _ => None,
    }
}

/// What a test-key submit turns into.
pub enum SandboxPlan {
    Complete(Value),
    Fail(JobError),
    Slow,
}

pub fn plan(kind: ModelKind, input: &serde_json::Map<String, Value>) -> SandboxPlan {
    match input.get("prompt").and_then(Value::as_str).map(str::trim) {
        Some(PROMPT_FAIL) => SandboxPlan::Fail(JobError::new(
            clipia_core::job::ERROR_GENERATION_FAILED,
            "Sandbox: the prompt \"clipia:fail\" always fails, so that failure handling can be tested.",
        )),
        Some(PROMPT_SLOW) => SandboxPlan::Slow,
        _ => SandboxPlan::Complete(sample_output(kind, input)),
    }
}

/// The fixed sample for a model type: one image per requested image, or the sample video.
pub fn sample_output(kind: ModelKind, input: &serde_json::Map<String, Value>) -> Value {
    match kind {
        ModelKind::Image => {
            let n = input.get("num_images").and_then(Value::as_u64).unwrap_or(1).clamp(1, 4);
            let image = crate::output::stored_image(
                &format!("{SANDBOX_DIR}/sandbox-image.webp"),
                &format!("{SANDBOX_DIR}/sandbox-image.png"),
                IMAGE_SIDE_PX,
                IMAGE_SIDE_PX,
                IMAGE_WEBP.len(),
            );
            let seed = input.get("seed").and_then(Value::as_u64).unwrap_or(42);
            json!({"images": vec![image; n as usize], "seed": seed})
        }
        ModelKind::Video => json!({"video": {
            "file": format!("{SANDBOX_DIR}/sandbox-video.mp4"),
            "original_file": format!("{SANDBOX_DIR}/sandbox-video.mp4"),
            "width": VIDEO_WIDTH_PX,
            "height": VIDEO_HEIGHT_PX,
            "duration": VIDEO_DURATION_S,
            "fps": VIDEO_FPS,
            "content_type": "video/mp4",
            "file_size": VIDEO_MP4.len(),
        }}),
    }
}
