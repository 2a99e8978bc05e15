//! The one retry rule for optimistic writes: read, decide, write conditionally on the
//! version read; a lost race (another writer got there first) re-reads and decides again,
//! at most [`MAX_WRITE_RACES`] times.
//!
//! A counter rather than a closure-taking helper: futures of async closures passed through
//! generic bounds lose their `Send`-ness (rust-lang/rust#110338), and every handler future
//! must be `Send`.

use crate::ports::StoreError;

/// How many lost races a change may suffer before the caller is told to try again later.
/// Past this the record is being hammered; more retries only add load.
pub const MAX_WRITE_RACES: usize = 5;

/// Lost races of one read-decide-write loop.
pub struct Races {
    what: String,
    lost: usize,
}

impl Races {
    /// `what` names the record for the error when every pass lost.
    pub fn new(what: impl Into<String>) -> Races {
        Races { what: what.into(), lost: 0 }
    }

    /// Notes a lost race: `Ok` to read and decide again, an error once the limit is used up.
    pub fn lost(&mut self) -> Result<(), StoreError> {
        self.lost += 1;
        if self.lost < MAX_WRITE_RACES {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("{} kept changing during {MAX_WRITE_RACES} attempts", self.what)))
        }
    }
}

/// A conditional write's result with a lost race as `None`.
pub fn won<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(StoreError::VersionConflict) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_the_limit() {
        let mut races = Races::new("record r");
        for _ in 1..MAX_WRITE_RACES {
            races.lost().unwrap();
        }
        assert!(matches!(races.lost(), Err(StoreError::Backend(m)) if m.contains("record r")));
    }

    #[test]
    fn only_conflicts_are_races() {
        assert_eq!(won(Ok::<_, StoreError>(1)).unwrap(), Some(1));
        assert_eq!(won::<u8>(Err(StoreError::VersionConflict)).unwrap(), None);
        assert!(matches!(won::<u8>(Err(StoreError::AlreadyExists)), Err(StoreError::AlreadyExists)));
    }
}
