//! Timestamps as the API writes them: RFC 3339 in UTC with millisecond precision.

use time::format_description::well_known::iso8601::{Config, EncodedConfig, Iso8601, TimePrecision};
use time::OffsetDateTime;

const FORMAT: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second { decimal_digits: std::num::NonZeroU8::new(3) })
    .encode();

/// `1717243200123` → `"2024-06-01T12:00:00.123Z"`.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Iso8601::<FORMAT>).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_717_243_200_123), "2024-06-01T12:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
