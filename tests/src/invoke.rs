//! Running a pipeline's parts on demand: the compactor function, invoked synchronously, and the
//! `inlet` command against the pipeline's table.

use anyhow::{Context as _, Result, bail, ensure};
use aws_sdk_lambda::primitives::Blob;

use crate::deploy::Pipeline;
use crate::target_dir;
use std::path::PathBuf;

impl Pipeline {
    /// Invokes the compactor synchronously and returns its JSON answer.
    pub async fn compact(&self, payload: serde_json::Value) -> Result<serde_json::Value> {
        let output = self
            .localstack
            .lambda
            .invoke()
            .function_name(&self.compactor)
            .payload(Blob::new(serde_json::to_vec(&payload)?))
            .send()
            .await
            .context("invoking the compactor")?;
        let body = output.payload.map(|p| p.into_inner()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body).to_string();
        if let Some(error) = output.function_error {
            bail!("compactor failed ({error}): {text}; log: {}", self.function_log(&self.compactor));
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Runs the `inlet` CLI against this LocalStack and returns its standard output.
    pub async fn inlet(&self, args: &[&str]) -> Result<String> {
        self.inlet_with(args, &[]).await
    }

    /// Runs the `inlet` CLI with extra environment (the functions' settings, say).
    pub async fn inlet_with(&self, args: &[&str], environment: &[(String, String)]) -> Result<String> {
        let output = self.inlet_output(args, environment).await?;
        ensure!(output.status.success(), "inlet {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Runs the `inlet` CLI and gives what it printed and its exit status, whatever it is.
    pub async fn inlet_output(&self, args: &[&str], environment: &[(String, String)]) -> Result<std::process::Output> {
        // `INLET_CLI`: another build of the command (`make dist-deploy` runs the release's).
        let binary =
            std::env::var_os("INLET_CLI").map(PathBuf::from).unwrap_or_else(|| target_dir().join("debug/inlet"));
        ensure!(
            binary.exists(),
            "{} is missing: build it with `cargo build -p inlet-cli` (make test does)",
            binary.display()
        );
        Ok(tokio::process::Command::new(&binary)
            .args(args)
            .envs(self.localstack.aws_env())
            .env("INLET_TABLE_URI", &self.table_uri)
            .env("INLET_SCHEMA", inlet::testing::schemas::events_path())
            .envs(environment.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .output()
            .await?)
    }
}
