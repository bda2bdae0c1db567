//! Waiting for what a deployed pipeline does on its own: fragments staged, letters dead, rows
//! committed. Each wait looks again at an interval until it sees what it waits for, and when
//! time runs out fails saying how far things got.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::deploy::Pipeline;
use crate::read::TableSnapshot;

/// What one look found.
pub enum Check<T> {
    /// What was waited for.
    Done(T),
    /// Not yet: how far things are, for the error if time runs out.
    Waiting(String),
}

/// Looks every `interval` until a look is [`Check::Done`]; after `timeout`, fails with the last
/// look's progress and what `context` adds (a function's log, say). A look that fails fails
/// the wait at once.
pub async fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut look: impl AsyncFnMut() -> Result<Check<T>>,
    context: impl FnOnce() -> String,
) -> Result<T> {
    let started = Instant::now();
    loop {
        match look().await? {
            Check::Done(value) => return Ok(value),
            Check::Waiting(progress) if started.elapsed() > timeout => {
                bail!("after {timeout:?} {progress}{}", context())
            }
            Check::Waiting(_) => tokio::time::sleep(interval).await,
        }
    }
}

impl Pipeline {
    /// Waits until fragments name every one of `uris`.
    pub async fn wait_for_staged(&self, uris: &[String], timeout: Duration) -> Result<Vec<String>> {
        let look = async || {
            let staged = self.staged_sources().await?;
            Ok(match uris.iter().all(|uri| staged.contains(uri)) {
                true => Check::Done(staged),
                false => Check::Waiting(format!(
                    "fragments name {} of {} objects",
                    uris.iter().filter(|u| staged.contains(u)).count(),
                    uris.len()
                )),
            })
        };
        poll(timeout, Duration::from_millis(500), look, || {
            format!("; converter log: {}", self.function_log(&self.converter))
        })
        .await
    }

    /// Waits until the dead-letter queue holds `count` messages and returns their bodies
    /// (received, then made visible again for later readers).
    pub async fn wait_for_dead_letters(&self, count: usize, timeout: Duration) -> Result<Vec<String>> {
        let look = async || {
            if self.queue_depth(&self.dlq_url).await? < count as u64 {
                return Ok(Check::Waiting(format!("the DLQ holds fewer than {count} messages")));
            }
            let received = self
                .localstack
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await?;
            Ok(Check::Done(received.messages.unwrap_or_default().into_iter().filter_map(|m| m.body).collect()))
        };
        poll(timeout, Duration::from_millis(500), look, String::new).await
    }

    /// Waits until the independent reader sees `rows` rows (compactions it did not start).
    pub async fn wait_for_rows(&self, rows: u64, timeout: Duration) -> Result<TableSnapshot> {
        let look = async || {
            Ok(match self.read_table(false).await {
                Ok(table) if table.num_rows >= rows => Check::Done(table),
                _ => Check::Waiting(format!("the table does not hold {rows} rows")),
            })
        };
        poll(timeout, Duration::from_secs(2), look, || {
            format!("; compactor log: {}", self.function_log(&self.compactor))
        })
        .await
    }
}
