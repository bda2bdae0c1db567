//! An isolation queue for tests: it keeps the message bodies it is given.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::Result;
use crate::ingest::Isolation;

/// Keeps every body isolated, in order.
#[derive(Debug, Default)]
pub struct KeptIsolation(Mutex<Vec<String>>);

impl KeptIsolation {
    /// The bodies isolated so far.
    pub fn bodies(&self) -> Vec<String> {
        self.0.lock().expect("poisoned").clone()
    }
}

#[async_trait]
impl Isolation for KeptIsolation {
    async fn isolate(&self, bodies: &[String]) -> Result<()> {
        self.0.lock().expect("poisoned").extend(bodies.iter().cloned());
        Ok(())
    }
}
