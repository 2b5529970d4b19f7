//! Credits and the ledger rules, in the manner of two-phase transfers: a submit *reserves* the
//! job's price (pending), and the job's end resolves that reservation exactly once — *capture*
//! of the amount actually used (never more than reserved) plus *release* of the rest.

/// A whole number of credits. Credits are never fractional and never negative.
pub type Credits = u64;

/// The kinds of ledger entry. The ledger is append-only; the balance is what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Credits added by an operator.
    Grant,
    /// Credits set aside for a job at submit.
    Reserve,
    /// Reserved credits spent by a finished job.
    Capture,
    /// Reserved credits returned unspent.
    Release,
    /// An operator's correction, either sign.
    Adjust,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Reserve => "reserve",
            EntryKind::Capture => "capture",
            EntryKind::Release => "release",
            EntryKind::Adjust => "adjust",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        [EntryKind::Grant, EntryKind::Reserve, EntryKind::Capture, EntryKind::Release, EntryKind::Adjust]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// How a reservation is resolved when its job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub capture: Credits,
    pub release: Credits,
}

impl Settlement {
    /// A COMPLETED job: capture what it used, at most what was reserved; release the rest.
    pub fn completed(reserved: Credits, used: Credits) -> Settlement {
        let capture = used.min(reserved);
        Settlement { capture, release: reserved - capture }
    }

    /// FAILED or CANCELED: nothing is charged, everything goes back.
    pub fn refunded(reserved: Credits) -> Settlement {
        Settlement { capture: 0, release: reserved }
    }
}

/// The effect of one entry on (spendable, reserved) balances, or `None` when it would take the
/// spendable balance below zero.
pub fn apply(available: Credits, reserved: Credits, kind: EntryKind, amount: i64) -> Option<(Credits, Credits)> {
    let amount_abs = amount.unsigned_abs();
    match kind {
        EntryKind::Grant => available.checked_add(amount_abs).map(|a| (a, reserved)),
        EntryKind::Adjust if amount >= 0 => available.checked_add(amount_abs).map(|a| (a, reserved)),
        EntryKind::Adjust => available.checked_sub(amount_abs).map(|a| (a, reserved)),
        EntryKind::Reserve => {
            Some((available.checked_sub(amount_abs)?, reserved.checked_add(amount_abs)?))
        }
        EntryKind::Capture => Some((available, reserved.checked_sub(amount_abs)?)),
        EntryKind::Release => {
            Some((available.checked_add(amount_abs)?, reserved.checked_sub(amount_abs)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_settlement_resolves_exactly_what_was_reserved(reserved in 0u64..1_000_000, used in 0u64..2_000_000) {
            let s = Settlement::completed(reserved, used);
            prop_assert_eq!(s.capture + s.release, reserved);
            prop_assert!(s.capture <= reserved);
            prop_assert!(s.capture <= used);
            let r = Settlement::refunded(reserved);
            prop_assert_eq!((r.capture, r.release), (0, reserved));
        }

        #[test]
        fn balances_follow_the_ledger_and_never_go_negative(
            grant in 0u64..10_000,
            jobs in proptest::collection::vec((1u64..500, 0u64..600, any::<bool>()), 0..60),
        ) {
            let (mut available, mut reserved) = apply(0, 0, EntryKind::Grant, grant as i64).unwrap();
            let mut spent = 0u64;
            for (price, used, completes) in jobs {
                match apply(available, reserved, EntryKind::Reserve, price as i64) {
                    None => { prop_assert!(available < price); continue; }
                    Some(next) => (available, reserved) = next,
                }
                let s = if completes { Settlement::completed(price, used) } else { Settlement::refunded(price) };
                (available, reserved) = apply(available, reserved, EntryKind::Capture, s.capture as i64).unwrap();
                (available, reserved) = apply(available, reserved, EntryKind::Release, s.release as i64).unwrap();
                spent += s.capture;
            }
            prop_assert_eq!(reserved, 0);
            prop_assert_eq!(available + spent, grant);
        }
    }

    #[test]
    fn a_reservation_larger_than_the_balance_is_refused() {
        assert_eq!(apply(7, 0, EntryKind::Reserve, 12), None);
        assert_eq!(apply(12, 0, EntryKind::Reserve, 12), Some((0, 12)));
        assert_eq!(apply(5, 0, EntryKind::Adjust, -6), None);
    }
}
