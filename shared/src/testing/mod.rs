//! Test and benchmark support, compiled only for tests and with the `testing` feature, never
//! into the Lambda functions: sample data, sources on local disk or in memory, and an isolation queue
//! that keeps what it is given.

pub mod isolation;
pub mod sample;
pub mod shapes;
pub mod sources;
