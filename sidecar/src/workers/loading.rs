//! When a loading worker is worth a progress line in the log: every 10 s for the first minute,
//! every 30 s up to five minutes, then every minute (a model that loads for half an hour logs
//! about 40 lines, not 180).

use std::time::Duration;

/// The first progress line comes this long after the worker started.
pub const FIRST_PROGRESS: Duration = Duration::from_secs(10);

/// The time between progress lines once a worker has been loading for `loading`.
pub fn progress_interval(loading: Duration) -> Duration {
    if loading < Duration::from_secs(60) {
        Duration::from_secs(10)
    } else if loading < Duration::from_secs(300) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(60)
    }
}

/// The progress lines of one worker start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    next: Duration,
}

impl Default for LoadProgress {
    fn default() -> Self {
        Self {
            next: FIRST_PROGRESS,
        }
    }
}

impl LoadProgress {
    /// The mark to report ("still loading after 30s") once `loading` has passed the next one;
    /// `None` before it. Marks a slow poll skipped over are not reported late.
    pub fn due(&mut self, loading: Duration) -> Option<Duration> {
        if loading < self.next {
            return None;
        }
        let mut mark = self.next;
        while self.next <= loading {
            mark = self.next;
            self.next += progress_interval(self.next);
        }
        Some(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_thin_out_as_the_load_goes_on() {
        let mut progress = LoadProgress::default();
        let mut marks = Vec::new();
        for second in 0..=700 {
            if let Some(mark) = progress.due(Duration::from_secs(second)) {
                marks.push(mark.as_secs());
            }
        }
        assert_eq!(&marks[..6], &[10, 20, 30, 40, 50, 60]);
        assert_eq!(&marks[6..9], &[90, 120, 150]);
        assert!(marks.contains(&300) && marks.contains(&360) && marks.contains(&660));
        assert!(!marks.contains(&330), "{marks:?}");
    }

    #[test]
    fn a_slow_poll_reports_the_latest_mark_once() {
        let mut progress = LoadProgress::default();
        assert_eq!(progress.due(Duration::from_secs(9)), None);
        assert_eq!(
            progress.due(Duration::from_secs(35)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(progress.due(Duration::from_secs(36)), None);
        assert_eq!(
            progress.due(Duration::from_secs(40)),
            Some(Duration::from_secs(40))
        );
    }
}
