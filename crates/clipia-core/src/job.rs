//! The job state machine: `IN_QUEUE → IN_PROGRESS → COMPLETED | FAILED | CANCELED`.
//!
//! A leased job can also go back from `IN_PROGRESS` to `IN_QUEUE` when its runner is lost or
//! released it during shutdown. Terminal states never change again.

/// A request's status, as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    InQueue,
    InProgress,
    Completed,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 5] =
        [Status::InQueue, Status::InProgress, Status::Completed, Status::Failed, Status::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::InQueue => "IN_QUEUE",
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Canceled => "CANCELED",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Canceled)
    }

    /// Whether the state machine allows `self → next`.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        match (self, next) {
            (InQueue, InProgress | Canceled | Failed | Completed) => true,
            (InProgress, InQueue | Completed | Failed | Canceled) => true,
            _ => false,
        }
    }
}

/// Why a job did not complete: the `error` object of a result (`code` is upper-case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: &str, message: impl Into<String>) -> JobError {
        JobError { code: code.to_owned(), message: message.into() }
    }

    pub fn canceled() -> JobError {
        JobError::new(ERROR_CANCELED, "The request was canceled.")
    }
}

/// The generation failed in the model or engine.
pub const ERROR_GENERATION_FAILED: &str = "GENERATION_FAILED";
/// The request was canceled by its owner.
pub const ERROR_CANCELED: &str = "CANCELED";
/// The job ran out of attempts because its runners kept disappearing.
pub const ERROR_WORKER_LOST: &str = "WORKER_LOST";
/// The job did not finish in time.
pub const ERROR_TIMEOUT: &str = "TIMEOUT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_final() {
        for from in Status::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in Status::ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("DONE"), None);
    }

    #[test]
    fn a_leased_job_can_be_requeued_but_not_the_reverse_of_terminal() {
        assert!(Status::InProgress.can_become(Status::InQueue));
        assert!(!Status::Completed.can_become(Status::InQueue));
        assert!(!Status::InQueue.can_become(Status::InQueue));
    }
}
