//! A client written for api.clipia.ai, pointed at this server: Clipia's official Python SDK
//! (pinned in compat/requirements.txt) runs compat/official_python_sdk.py against a real server.
//! The SDK is installed into `target/compat-venv` by `scripts/test.sh`; without it the test
//! says so and skips.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestServer;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn the_official_python_sdk_works_unchanged() {
    let python = std::env::var_os("CLIPIA_COMPAT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/compat-venv/bin/python"));
    let has_sdk = Command::new(&python).args(["-c", "import clipia"]).output().is_ok_and(|o| o.status.success());
    if !has_sdk {
        eprintln!("skipping: the official Clipia SDK is not installed at {} (scripts/test.sh installs it)", python.display());
        return;
    }
    let server = TestServer::start().await;
    let out = Command::new(&python)
        .arg(repo().join("compat/official_python_sdk.py"))
        .env("CLIPIA_BASE_URL", &server.base)
        .env("CLIPIA_LIVE_KEY", &server.live_key)
        .env("CLIPIA_TEST_KEY", &server.test_key)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the official SDK failed against this server:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
