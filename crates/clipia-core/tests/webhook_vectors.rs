//! The shared webhook signature vectors (`contract/webhook-vectors.json`, SPEC §8): every case
//! must produce exactly the expected headers, in both formats, and verify with every secret.

use clipia_core::webhook::{clipia_signature, standard_signature, verify, verify_standard, WebhookSecret};
use serde_json::Value;

/// The Standard Webhooks spec's own reference signature; the vectors file must keep it.
const STANDARD_REFERENCE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contract/webhook-vectors.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("the vectors file is JSON");
    doc["cases"].as_array().expect("a cases array").clone()
}

fn check(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let secrets: Vec<WebhookSecret> = case["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| WebhookSecret::parse(s.as_str().unwrap()).unwrap_or_else(|| panic!("{name}: bad secret")))
        .collect();
    let (id, t, body) = (case["webhook_id"].as_str().unwrap(), case["timestamp"].as_str().unwrap(), case["body"].as_str().unwrap());
    let clipia = clipia_signature(&secrets, t, body.as_bytes());
    let standard = standard_signature(&secrets, id, t, body.as_bytes());
    assert_eq!(clipia, case["expected"]["X-Clipia-Signature"].as_str().unwrap(), "{name}: X-Clipia-Signature");
    assert_eq!(standard, case["expected"]["webhook-signature"].as_str().unwrap(), "{name}: webhook-signature");
    // The timestamps are old: verify with the tolerance disabled, then with a fixed clock.
    let now: i64 = t.parse().unwrap();
    for secret in &secrets {
        assert_eq!(verify(secret, &clipia, body.as_bytes(), now, None), Ok(()), "{name}: verify");
        assert_eq!(verify(secret, &clipia, body.as_bytes(), now + 60, Some(300)), Ok(()), "{name}: verify at t+60");
        assert!(verify(secret, &clipia, body.as_bytes(), now + 301, Some(300)).is_err(), "{name}: stale");
        assert_eq!(verify_standard(secret, id, t, &standard, body.as_bytes(), now, None), Ok(()), "{name}: verify_standard");
        let tampered = format!("{body} ");
        assert!(verify(secret, &clipia, tampered.as_bytes(), now, None).is_err(), "{name}: tampered body");
        assert!(verify_standard(secret, id, t, &standard, tampered.as_bytes(), now, None).is_err(), "{name}: tampered");
    }
}

#[test]
fn every_vector_case_passes() {
    let cases = vectors();
    assert!(cases.len() >= 4, "the vectors file lost cases");
    for case in &cases {
        check(case);
    }
}

#[test]
fn the_standard_webhooks_reference_signature_holds() {
    let case = vectors().into_iter().find(|c| c["name"] == "standard-webhooks-reference").expect("the reference case");
    assert_eq!(case["expected"]["webhook-signature"], STANDARD_REFERENCE);
    let secret = WebhookSecret::parse(case["secrets"][0].as_str().unwrap()).unwrap();
    let sig = standard_signature(&[secret], case["webhook_id"].as_str().unwrap(), case["timestamp"].as_str().unwrap(), case["body"].as_str().unwrap().as_bytes());
    assert_eq!(sig, STANDARD_REFERENCE);
}

#[test]
fn rotation_signs_oldest_first_and_newest_last() {
    let case = vectors().into_iter().find(|c| c["name"] == "rotation-two-secrets").expect("the rotation case");
    let secrets: Vec<WebhookSecret> =
        case["secrets"].as_array().unwrap().iter().map(|s| WebhookSecret::parse(s.as_str().unwrap()).unwrap()).collect();
    let (t, body) = (case["timestamp"].as_str().unwrap(), case["body"].as_str().unwrap().as_bytes());
    let both = clipia_signature(&secrets, t, body);
    let newest_only = clipia_signature(&secrets[1..], t, body);
    // A verifier that keeps only the last v1= must find the newest secret's signature there.
    assert_eq!(both.rsplit(",v1=").next(), newest_only.rsplit(",v1=").next());
}
