//! Test and benchmark support, compiled only for tests and with the `testing` feature, never
//! into the Lambda functions: sample data and sources on local disk or in memory.

pub mod sample;
pub mod sources;
