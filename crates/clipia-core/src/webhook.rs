//! Webhooks as a domain (SPEC §8): signing secrets, both signature formats, verification, the
//! retry schedule, what an attempt's outcome means, and the SSRF address classifier. No I/O.
//!
//! Two headers carry signatures. `X-Clipia-Signature: t=<unix>,v1=<hex>` is Clipia's: lower-case
//! hex HMAC-SHA256 keyed with the secret string's UTF-8 bytes (prefix included) over
//! `"{t}.{body}"`. `webhook-signature: v1,<base64>` is Standard Webhooks': keyed with the
//! base64-decoded part after `whsec_`, over `"{id}.{t}.{body}"`. During a rotation every active
//! secret signs, OLDEST first and NEWEST last, because some published Clipia verifiers keep only
//! the last `v1=` they see.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Every secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (SPEC §8: 32).
pub const SECRET_BYTES: usize = 32;
/// How long a rotated-out secret keeps signing beside the new one (SPEC §8: 24 h).
pub const SECRET_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;
/// The timestamp tolerance verifiers use by default (SPEC §8: 300 s).
pub const VERIFY_TOLERANCE_S_DEFAULT: u64 = 300;
/// How long one delivery attempt may take before it counts as failed (SPEC §8: 10 s).
pub const WEBHOOK_TIMEOUT_MS: u64 = 10_000;
/// Delays before each retry, in seconds: 8 retries over about 27.6 h (SPEC §8 asks for at least
/// 6 over at least 24 h). Each delay is stretched by a random 0–25 % (jitter only adds, so the
/// total never falls under the nominal sum). Mirrored in docs/webhooks.md.
pub const WEBHOOK_RETRY_SCHEDULE_S: [u64; 8] = [10, 60, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// The most jitter adds to a retry delay, as a fraction of it.
pub const WEBHOOK_RETRY_JITTER_MAX: f64 = 0.25;
/// The longest `Retry-After` a receiver can ask for; longer asks are cut to this.
pub const WEBHOOK_RETRY_AFTER_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// A signing secret, `whsec_<base64>`. Only [`WebhookSecret::parse`] and
/// [`WebhookSecret::generate`] make one, so every instance has a decodable key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret: `whsec_` and the base64 of 32 random bytes.
    pub fn generate() -> WebhookSecret {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        WebhookSecret { text: format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)), key: bytes.to_vec() }
    }

    /// `whsec_` followed by standard base64 of at least one byte.
    pub fn parse(text: &str) -> Option<WebhookSecret> {
        let key = BASE64.decode(text.strip_prefix(SECRET_PREFIX)?).ok().filter(|k| !k.is_empty())?;
        Some(WebhookSecret { text: text.to_owned(), key })
    }

    /// The secret as shown to its owner.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `v1=` hex of Clipia's header: keyed with the whole secret string.
    fn clipia_v1(&self, timestamp: &str, body: &[u8]) -> [u8; 32] {
        hmac(self.text.as_bytes(), &[timestamp.as_bytes(), b".", body])
    }

    /// The Standard Webhooks signature: keyed with the decoded key.
    fn standard_v1(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        hmac(&self.key, &[webhook_id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, even in debug logs.
        f.write_str("WebhookSecret(whsec_…)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `t=<timestamp>,v1=<hex>[,v1=<hex>…]`, one `v1=` per secret in the order given (oldest first).
pub fn clipia_signature(secrets: &[WebhookSecret], timestamp: &str, body: &[u8]) -> String {
    let mut out = format!("t={timestamp}");
    for secret in secrets {
        out.push_str(",v1=");
        out.push_str(&hex::encode(secret.clipia_v1(timestamp, body)));
    }
    out
}

/// `v1,<base64>[ v1,<base64>…]`, one per secret in the order given (oldest first).
pub fn standard_signature(secrets: &[WebhookSecret], webhook_id: &str, timestamp: &str, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| format!("v1,{}", BASE64.encode(s.standard_v1(webhook_id, timestamp, body))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The headers of one signed delivery, in the order they are sent.
pub fn signed_headers(secrets: &[WebhookSecret], webhook_id: &str, timestamp_s: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let t = timestamp_s.to_string();
    vec![
        ("X-Clipia-Webhook-Id", webhook_id.to_owned()),
        ("X-Clipia-Timestamp", t.clone()),
        ("X-Clipia-Signature", clipia_signature(secrets, &t, body)),
        ("webhook-id", webhook_id.to_owned()),
        ("webhook-timestamp", t.clone()),
        ("webhook-signature", standard_signature(secrets, webhook_id, &t, body)),
    ]
}

/// Why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the timestamp is outside the tolerance")]
    Expired,
    #[error("no signature matches")]
    Mismatch,
}

fn check_time(timestamp: &str, now_s: i64, tolerance_s: Option<u64>) -> Result<(), VerifyError> {
    let t: i64 = timestamp.parse().map_err(|_| VerifyError::Malformed)?;
    match tolerance_s {
        Some(tol) if t.abs_diff(now_s) > tol => Err(VerifyError::Expired),
        _ => Ok(()),
    }
}

/// Checks an `X-Clipia-Signature` header against `body` with one secret: any `v1=` may match
/// (so a verifier holding either secret of a rotation accepts), compared in constant time.
/// `tolerance_s: None` skips the timestamp check (for replaying old vectors).
pub fn verify(secret: &WebhookSecret, signature_header: &str, body: &[u8], now_s: i64, tolerance_s: Option<u64>) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in signature_header.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", sig)) => candidates.push(sig),
            _ => {} // other schemes and versions are ignored, as Stripe-style verifiers do
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    check_time(timestamp, now_s, tolerance_s)?;
    let expected = hex::encode(secret.clipia_v1(timestamp, body));
    let mut matched = subtle::Choice::from(0u8);
    for candidate in candidates {
        matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
    }
    if bool::from(matched) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

/// Checks the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
pub fn verify_standard(
    secret: &WebhookSecret,
    webhook_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: Option<u64>,
) -> Result<(), VerifyError> {
    check_time(timestamp, now_s, tolerance_s)?;
    let expected = BASE64.encode(secret.standard_v1(webhook_id, timestamp, body));
    let mut matched = subtle::Choice::from(0u8);
    for part in signature_header.split(' ') {
        if let Some(sig) = part.strip_prefix("v1,") {
            matched |= expected.as_bytes().ct_eq(sig.as_bytes());
        }
    }
    if bool::from(matched) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

// ---- delivery outcomes and the retry schedule -------------------------------------------------

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: connection refused, reset, timeout, TLS failure.
    Transport,
    /// The SSRF guard refused the destination; retrying cannot help.
    Refused,
}

/// What happens after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// A 2xx: done.
    Delivered,
    /// No more attempts, with the reason.
    GiveUp(String),
    /// Try again after this many milliseconds.
    RetryInMs(u64),
}

/// The decision after attempt `retries_done + 1` of a delivery round. `jitter` is a uniform draw
/// in `[0, 1)` and `scale` shrinks the schedule (1.0 in production; tests pass 0.001), so the
/// whole policy is a pure function of its inputs. `retry_after_ms` is the receiver's
/// `Retry-After`, honored on 429 and 503: the retry waits at least that long.
pub fn next_step(outcome: &AttemptOutcome, retries_done: usize, jitter: f64, scale: f64, retry_after_ms: Option<u64>) -> NextStep {
    match outcome {
        AttemptOutcome::Status(s) if (200..300).contains(s) => return NextStep::Delivered,
        AttemptOutcome::Status(410) => return NextStep::GiveUp("the receiver answered 410 Gone, which stops retries".into()),
        AttemptOutcome::Refused => {
            return NextStep::GiveUp("the destination is refused by the server's webhook address guard".into())
        }
        _ => {}
    }
    let Some(base_s) = WEBHOOK_RETRY_SCHEDULE_S.get(retries_done) else {
        return NextStep::GiveUp(format!("no success after {} attempts", WEBHOOK_RETRY_SCHEDULE_S.len() + 1));
    };
    let jitter = jitter.clamp(0.0, 1.0) * WEBHOOK_RETRY_JITTER_MAX;
    let mut delay_ms = (*base_s as f64 * 1000.0 * (1.0 + jitter) * scale.max(0.0)) as u64;
    if matches!(outcome, AttemptOutcome::Status(429 | 503)) {
        if let Some(asked) = retry_after_ms {
            delay_ms = delay_ms.max(asked.min(WEBHOOK_RETRY_AFTER_MS_MAX));
        }
    }
    NextStep::RetryInMs(delay_ms)
}

/// `Retry-After` in milliseconds from `now`: delta-seconds, or an HTTP-date (RFC 9110 §10.2.3;
/// a date already past means "now", 0). `now` should be the response's own `Date` when it has
/// one, so that a receiver whose clock differs from ours still gets the wait it asked for.
pub fn parse_retry_after_ms(value: &str, now: SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map(|d| d.as_millis().min(u64::MAX as u128) as u64).unwrap_or(0))
}

// ---- destinations -----------------------------------------------------------------------------

/// The destination key that per-destination concurrency counts by: `host:port`, lower-case,
/// without user info. A string function so that every store computes the same key.
pub fn destination_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    host.to_ascii_lowercase()
}

/// Whether webhooks must never be sent to `ip`: loopback, private, link-local, CGNAT,
/// unspecified, multicast, reserved and cloud-metadata addresses (SPEC §8), including those
/// wrapped in IPv6 (mapped, NAT64, 6to4).
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()                        // 127/8
        || ip.is_private()                         // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                      // 169.254/16, incl. the 169.254.169.254 metadata service
        || ip.is_broadcast()
        || ip.is_multicast()                       // 224/4
        || a == 0                                  // "this network"
        || (a == 100 && (64..128).contains(&b))    // CGNAT 100.64/10, incl. Alibaba's 100.100.100.200 metadata
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments, incl. 192.0.0.192 (Oracle metadata)
        || (a == 198 && (b == 18 || b == 19))      // benchmarking 198.18/15
        || a >= 240                                // reserved 240/4
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()                                   // ff00::/8
        || (seg[0] & 0xfe00) == 0xfc00                         // unique local fc00::/7, incl. AWS fd00:ec2::254
        || (seg[0] & 0xffc0) == 0xfe80                         // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0                         // deprecated site-local fec0::/10
        || (seg[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] && is_forbidden_v4(embedded_v4(seg[6], seg[7]))) // NAT64
        || (seg[0] == 0x2002 && is_forbidden_v4(embedded_v4(seg[1], seg[2])))                       // 6to4
        || (seg[0..6] == [0; 6] && is_forbidden_v4(embedded_v4(seg[6], seg[7])))                    // IPv4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(BASE64.decode(&s.expose()[6..]).unwrap().len(), 32);
        assert_eq!(WebhookSecret::parse(s.expose()), Some(s.clone()));
        assert_ne!(WebhookSecret::generate(), s);
        assert!(!format!("{s:?}").contains(&s.expose()[6..]));
        for bad in ["", "whsec_", "whsec_!!!", "sk_abc", "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"] {
            assert!(WebhookSecret::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn verify_accepts_any_active_secret_and_rejects_tampering() {
        let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
        let body = br#"{"request_id":"x","status":"OK"}"#;
        let header = clipia_signature(&[old.clone(), new.clone()], "1000", body);
        assert_eq!(verify(&old, &header, body, 1000, Some(300)), Ok(()));
        assert_eq!(verify(&new, &header, body, 1200, Some(300)), Ok(()));
        assert_eq!(verify(&WebhookSecret::generate(), &header, body, 1000, Some(300)), Err(VerifyError::Mismatch));
        assert_eq!(verify(&old, &header, b"{}", 1000, Some(300)), Err(VerifyError::Mismatch));
        assert_eq!(verify(&old, &header, body, 1301, Some(300)), Err(VerifyError::Expired));
        assert_eq!(verify(&old, &header, body, 699, Some(300)), Err(VerifyError::Expired));
        assert_eq!(verify(&old, &header, body, 99_999, None), Ok(()));
        assert_eq!(verify(&old, "v1=abc", body, 1000, None), Err(VerifyError::Malformed));
        assert_eq!(verify(&old, "t=soon,v1=abc", body, 1000, None), Err(VerifyError::Malformed));
        // A timestamp swapped in after signing breaks the signature.
        let forged = header.replacen("t=1000", "t=1001", 1);
        assert_eq!(verify(&old, &forged, body, 1000, Some(300)), Err(VerifyError::Mismatch));
    }

    #[test]
    fn verify_standard_checks_id_timestamp_and_body() {
        let s = WebhookSecret::generate();
        let sig = standard_signature(std::slice::from_ref(&s), "msg_1", "1000", b"{}");
        assert_eq!(verify_standard(&s, "msg_1", "1000", &sig, b"{}", 1000, Some(300)), Ok(()));
        assert_eq!(verify_standard(&s, "msg_2", "1000", &sig, b"{}", 1000, Some(300)), Err(VerifyError::Mismatch));
        assert_eq!(verify_standard(&s, "msg_1", "1000", &sig, b"[]", 1000, Some(300)), Err(VerifyError::Mismatch));
        assert_eq!(verify_standard(&s, "msg_1", "1000", &sig, b"{}", 5000, Some(300)), Err(VerifyError::Expired));
    }

    #[test]
    fn the_schedule_spans_at_least_six_retries_over_a_day() {
        assert!(WEBHOOK_RETRY_SCHEDULE_S.len() >= 6);
        assert!(WEBHOOK_RETRY_SCHEDULE_S.iter().sum::<u64>() >= 24 * 3600);
        assert!(WEBHOOK_RETRY_SCHEDULE_S.windows(2).all(|w| w[0] <= w[1]), "delays never shrink");
    }

    #[test]
    fn next_step_follows_the_schedule_with_jitter_and_scale() {
        let fail = AttemptOutcome::Status(500);
        assert_eq!(next_step(&fail, 0, 0.0, 1.0, None), NextStep::RetryInMs(10_000));
        assert_eq!(next_step(&fail, 0, 0.999_999, 1.0, None), NextStep::RetryInMs(12_499));
        assert_eq!(next_step(&fail, 3, 0.0, 1.0, None), NextStep::RetryInMs(1_800_000));
        assert_eq!(next_step(&fail, 7, 0.5, 1.0, None), NextStep::RetryInMs(40_500_000));
        assert_eq!(next_step(&AttemptOutcome::Transport, 1, 0.0, 0.001, None), NextStep::RetryInMs(60));
        assert!(matches!(next_step(&fail, 8, 0.0, 1.0, None), NextStep::GiveUp(why) if why.contains("9 attempts")));
        // The total wait, even with no jitter, is over 24 h.
        let total: u64 = (0..WEBHOOK_RETRY_SCHEDULE_S.len())
            .map(|i| match next_step(&fail, i, 0.0, 1.0, None) {
                NextStep::RetryInMs(ms) => ms,
                other => panic!("{other:?}"),
            })
            .sum();
        assert!(total >= 24 * 3600 * 1000);
    }

    #[test]
    fn next_step_stops_on_success_gone_and_refusal() {
        for s in [200, 201, 204, 299] {
            assert_eq!(next_step(&AttemptOutcome::Status(s), 0, 0.0, 1.0, None), NextStep::Delivered);
        }
        assert!(matches!(next_step(&AttemptOutcome::Status(410), 0, 0.0, 1.0, None), NextStep::GiveUp(w) if w.contains("410")));
        assert!(matches!(next_step(&AttemptOutcome::Refused, 0, 0.0, 1.0, None), NextStep::GiveUp(_)));
        // A redirect is not followed: it is a failure like any other.
        assert_eq!(next_step(&AttemptOutcome::Status(302), 0, 0.0, 1.0, None), NextStep::RetryInMs(10_000));
    }

    #[test]
    fn retry_after_is_honored_on_429_and_503_only() {
        let after = Some(120_000);
        assert_eq!(next_step(&AttemptOutcome::Status(429), 0, 0.0, 1.0, after), NextStep::RetryInMs(120_000));
        assert_eq!(next_step(&AttemptOutcome::Status(503), 0, 0.0, 0.001, after), NextStep::RetryInMs(120_000));
        assert_eq!(next_step(&AttemptOutcome::Status(500), 0, 0.0, 1.0, after), NextStep::RetryInMs(10_000));
        // A shorter ask never brings the retry forward; an absurd one is capped.
        assert_eq!(next_step(&AttemptOutcome::Status(429), 2, 0.0, 1.0, Some(1_000)), NextStep::RetryInMs(300_000));
        assert_eq!(
            next_step(&AttemptOutcome::Status(429), 0, 0.0, 1.0, Some(u64::MAX)),
            NextStep::RetryInMs(WEBHOOK_RETRY_AFTER_MS_MAX)
        );
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(parse_retry_after_ms(" 7 ", now), Some(7_000));
        assert_eq!(parse_retry_after_ms("Wed, 21 Oct 2015 07:30:30 GMT", now), Some(150_000));
        assert_eq!(parse_retry_after_ms("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(0), "a past date: now");
        assert_eq!(parse_retry_after_ms("soon", now), None);
        assert_eq!(parse_retry_after_ms("-5", now), None);
    }

    #[test]
    fn destination_hosts_ignore_user_info_path_and_case() {
        assert_eq!(destination_host("https://User:pw@Example.COM:8443/a/b?c#d"), "example.com:8443");
        assert_eq!(destination_host("http://[::1]:9000/x"), "[::1]:9000");
        assert_eq!(destination_host("http://h"), "h");
    }

    #[test]
    fn the_address_classifier_refuses_every_internal_range() {
        let refused = [
            "127.0.0.1", "127.255.0.9", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1",
            "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255", "100.100.100.200", "0.0.0.0", "0.1.2.3",
            "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.0.192", "198.18.0.1",
            "::", "::1", "fc00::1", "fd00:ec2::254", "fe80::1", "febf::1", "ff02::1", "::ffff:127.0.0.1",
            "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::127.0.0.1",
        ];
        for ip in refused {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip} must be refused");
        }
        let allowed = [
            "8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
            "169.253.0.1", "192.0.2.1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
        ];
        for ip in allowed {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }
}
